package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// buffers recycles the block buffers of puts: most objects are small, and
// a fresh blockSize allocation per put would dominate their cost.
var buffers = sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }}

// upload writes the data of src to the block blob bc, visible only once
// whole. Data that fits in one block goes in a single Put Blob; more is
// staged as blocks, uploadConcurrency at a time while the next block is
// read, and committed with Put Block List after src reached its end.
// Conditions ride on that final request. Any failure returns before it.
func upload(ctx context.Context, bc *blockblob.Client, src io.Reader, cond *blob.AccessConditions) (blobResult, error) {
	first := buffers.Get().(*[]byte)
	n, err := fill(src, *first)
	switch err {
	case nil:
		return stageAndCommit(ctx, bc, src, first, cond)
	case io.EOF:
		// The whole object is in hand: one request.
		body := newBody((*first)[:n])
		resp, err := bc.Upload(ctx, body, &blockblob.UploadOptions{AccessConditions: cond})
		body.release()
		buffers.Put(first)
		if err != nil {
			return blobResult{}, err
		}
		return blobResult{etag: resp.ETag, modified: resp.LastModified}, nil
	}
	buffers.Put(first)
	return blobResult{}, err
}

// blobResult is what a successful upload reports.
type blobResult struct {
	etag     *azcore.ETag
	modified *time.Time
}

func stageAndCommit(ctx context.Context, bc *blockblob.Client, src io.Reader, first *[]byte, cond *blob.AccessConditions) (blobResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Block IDs must all have the same length within a blob; a random
	// prefix keeps this put's blocks apart from a concurrent put's.
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	prefix := hex.EncodeToString(rnd[:])
	var ids []string

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stageErr error
		slots    = make(chan struct{}, uploadConcurrency)
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return stageErr
	}
	stage := func(buf *[]byte, n int) {
		id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", prefix, len(ids)))
		ids = append(ids, id)
		wg.Go(func() {
			body := newBody((*buf)[:n])
			defer func() { body.release(); buffers.Put(buf); <-slots }()
			_, err := bc.StageBlock(ctx, id, body, nil)
			if err != nil {
				mu.Lock()
				if stageErr == nil {
					stageErr = err
				}
				mu.Unlock()
				cancel()
			}
		})
	}

	slots <- struct{}{}
	stage(first, len(*first))
	var readErr error
	for readErr == nil && failed() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			readErr = ctx.Err()
			continue
		}
		buf := buffers.Get().(*[]byte)
		var n int
		n, readErr = fill(src, *buf)
		if n > 0 && (readErr == nil || readErr == io.EOF) {
			stage(buf, n)
		} else {
			buffers.Put(buf)
			<-slots
		}
	}
	wg.Wait()
	// A failed block first: its cancel is what may have stopped the loop.
	if err := failed(); err != nil {
		return blobResult{}, err
	}
	if readErr != nil && readErr != io.EOF {
		return blobResult{}, readErr
	}
	if err := ctx.Err(); err != nil {
		return blobResult{}, err
	}
	resp, err := bc.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: cond})
	if err != nil {
		return blobResult{}, err
	}
	return blobResult{etag: resp.ETag, modified: resp.LastModified}, nil
}

// body is a request body over a pooled buffer. The HTTP transport may
// still read a body after the request returned (when the server answered
// before taking all of it); release cuts it off, so the buffer can be
// reused without that late reader seeing another put's data.
type body struct {
	mu   sync.Mutex
	r    *bytes.Reader
	dead bool
}

var errReleased = errors.New("request body read after its request ended")

func newBody(b []byte) *body { return &body{r: bytes.NewReader(b)} }

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return 0, errReleased
	}
	return b.r.Read(p)
}

func (b *body) Seek(offset int64, whence int) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return 0, errReleased
	}
	return b.r.Seek(offset, whence)
}

func (b *body) Close() error { return nil }

func (b *body) release() {
	b.mu.Lock()
	b.dead = true
	b.mu.Unlock()
}

// fill reads into buf until it is full or r fails. Unlike io.ReadFull it
// keeps r's own errors apart from the end of the data: io.EOF means a
// clean end, and an io.ErrUnexpectedEOF is r's, not a short read.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
