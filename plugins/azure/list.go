package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sqlitereplicator/replicator/sdk"
)

// List pages through the flat listing of the prefix. Azure's markers are
// opaque, so startAfter is passed as the listing's startFrom (inclusive;
// see serverStart for the part of it that is safe to pass), and the keys
// up to startAfter that still arrive are skipped here. A service that
// ignores startFrom costs one request per 5,000 keys of the prefix up to
// startAfter; one that refuses it is asked without it from then on.
func (s *Store) List(ctx context.Context, prefix, startAfter string, fn func(sdk.ObjectInfo) error) error {
	if startAfter != "" && !strings.HasPrefix(startAfter, prefix) && startAfter > prefix {
		return nil // every key with the prefix sorts before startAfter
	}
	useStartFrom := serverStart(startAfter) != "" && !s.noStartFrom.Load()
	called := false
	err := s.list(ctx, prefix, startAfter, useStartFrom, func(info sdk.ObjectInfo) error {
		called = true
		return fn(info)
	})
	var re *azcore.ResponseError
	if useStartFrom && !called && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		s.noStartFrom.Store(true)
		err = s.list(ctx, prefix, startAfter, false, fn)
	}
	return err
}

func (s *Store) list(ctx context.Context, prefix, startAfter string, useStartFrom bool, fn func(sdk.ObjectInfo) error) error {
	opts := &container.ListBlobsFlatOptions{Prefix: to.Ptr(s.fullName(prefix))}
	if s.pageSize > 0 {
		opts.MaxResults = &s.pageSize
	}
	if from := serverStart(startAfter); useStartFrom && from != "" {
		opts.StartFrom = to.Ptr(s.fullName(from))
	}
	o := &orderer{emit: func(info sdk.ObjectInfo) error {
		if startAfter != "" && info.Key <= startAfter {
			return nil
		}
		return fn(info)
	}}
	pager := s.cc.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return s.fail(fmt.Sprintf("list %q", prefix), err)
		}
		if page.Segment == nil {
			continue
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil || item.Properties == nil {
				continue
			}
			key, ok := s.keyOf(*item.Name)
			if !ok || sdk.ValidateKey(key) != nil {
				continue // not a name this store could have written
			}
			info := sdk.ObjectInfo{Key: key, ETag: etagOf(item.Properties.ETag)}
			if item.Properties.ContentLength != nil {
				info.Size = *item.Properties.ContentLength
			}
			if item.Properties.LastModified != nil {
				info.ModTime = *item.Properties.LastModified
			}
			if err := o.add(info); err != nil {
				return err
			}
		}
	}
	return o.flush()
}

// serverStart returns the part of startAfter that can go to the service as
// startFrom: the service compares in UTF-16 order, in which a key after
// startAfter in byte order may sort before it, but only where the two
// differ at a character from U+E000 up. So startAfter is cut before its
// first such character; every key after startAfter in byte order then
// sorts at or after the cut in UTF-16 order too.
func serverStart(startAfter string) string {
	for i := 0; i < len(startAfter); i++ {
		if startAfter[i] >= 0xEE { // the lead byte of U+E000 and above
			return startAfter[:i]
		}
	}
	return startAfter
}

// fullName is the blob name of key (or of a key prefix) under the path.
func (s *Store) fullName(key string) string {
	if s.cfg.prefix == "" {
		return key
	}
	return s.cfg.prefix + "/" + key
}

// orderer turns the service's listing order into byte order. Azure sorts
// names by UTF-16 code units, which agrees with the byte order of UTF-8
// except between characters above U+FFFF (surrogate pairs, low in UTF-16)
// and U+E000..U+FFFF. So a key is held back from its first character
// above U+FFFF on: with R its part before that character, every key that
// must come before it in byte order but came after it from the service
// also starts with R, and keys starting with R arrive together. The keys
// of R are gathered and sorted, and released when the first key outside R
// arrives. The memory this takes is the number of keys that share such an
// R, none for keys without characters above U+FFFF.
//
// A service that already lists in byte order passes through unchanged; one
// whose order cannot be repaired this way (the directory order of a
// hierarchical namespace) makes List fail rather than break its promise.
type orderer struct {
	emit    func(sdk.ObjectInfo) error
	held    []sdk.ObjectInfo
	region  string // R, while held is not empty
	last    string
	emitted bool
}

func (o *orderer) add(info sdk.ObjectInfo) error {
	if len(o.held) > 0 {
		if strings.HasPrefix(info.Key, o.region) {
			o.held = append(o.held, info)
			return nil
		}
		if err := o.flush(); err != nil {
			return err
		}
	}
	if i := firstSupplementary(info.Key); i >= 0 {
		o.region = info.Key[:i]
		o.held = append(o.held, info)
		return nil
	}
	return o.send(info)
}

// flush releases the held keys in byte order.
func (o *orderer) flush() error {
	slices.SortFunc(o.held, func(a, b sdk.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	held := o.held
	o.held = o.held[:0]
	for _, info := range held {
		if err := o.send(info); err != nil {
			return err
		}
	}
	return nil
}

func (o *orderer) send(info sdk.ObjectInfo) error {
	if o.emitted && info.Key <= o.last {
		return sdk.Errorf(sdk.Unknown, "azure: list: the service returned %q after %q, out of byte order: is this an account with a hierarchical namespace? (not supported)", info.Key, o.last)
	}
	o.last, o.emitted = info.Key, true
	return o.emit(info)
}

// firstSupplementary returns the byte index of the first character above
// U+FFFF in s (the only ones UTF-8 encodes with four bytes), or -1.
func firstSupplementary(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xF0 {
			return i
		}
	}
	return -1
}
