package conformance

import (
	"bytes"
	"testing"
)

// rangeCase is a Get(offset, length) of rangeData and what it must return.
type rangeCase struct {
	offset, length int64
	start, end     int // the expected bytes are rangeData[start:end]
}

// rangeSize is the size of the object ranges are read from.
const rangeSize = 100

func testRange(t *testing.T, h Harness) {
	tests := []struct {
		name  string
		cases []rangeCase
	}{
		{"Inside", []rangeCase{{10, 20, 10, 30}, {99, 1, 99, 100}, {0, 1, 0, 1}}},
		{"FromStart", []rangeCase{{0, 10, 0, 10}, {0, rangeSize, 0, rangeSize}}},
		{"ToEOF", []rangeCase{{90, 10, 90, 100}}},
		{"PastEOF", []rangeCase{{90, 50, 90, 100}, {0, 1000, 0, 100}, {99, 2, 99, 100}}},
		{"AtEOF", []rangeCase{{rangeSize, 10, 100, 100}, {rangeSize, -1, 100, 100}}},
		{"BeyondEOF", []rangeCase{{150, 10, 100, 100}, {150, -1, 100, 100}, {1 << 40, 1, 100, 100}}},
		{"NegativeLength", []rangeCase{{0, -1, 0, 100}, {37, -1, 37, 100}, {99, -1, 99, 100}}},
		{"ZeroLength", []rangeCase{{10, 0, 10, 10}, {0, 0, 0, 0}}},
	}
	for _, tc := range tests {
		leaf(t, h, tc.name, func(e *env) {
			data := text(rangeSize)
			e.put("obj", data)
			for _, c := range tc.cases {
				e.wantRange("obj", data, c)
			}
		})
	}

	// Some backends refuse any range of an empty object.
	leaf(t, h, "EmptyObject", func(e *env) {
		e.put("empty", nil)
		for _, c := range []rangeCase{{0, -1, 0, 0}, {0, 10, 0, 0}, {0, 0, 0, 0}, {5, -1, 0, 0}, {5, 5, 0, 0}} {
			e.wantRange("empty", nil, c)
		}
	})
}

func (e *env) wantRange(key string, data []byte, c rangeCase) {
	e.t.Helper()
	got, err := e.readRange(key, c.offset, c.length)
	want := data[c.start:c.end]
	switch {
	case err != nil:
		e.t.Errorf("Get(%q, %d, %d) of a %d-byte object: %v; want %s", key, c.offset, c.length, len(data), err, describe(want))
	case !bytes.Equal(got, want):
		e.t.Errorf("Get(%q, %d, %d) of a %d-byte object returned %s, want %s", key, c.offset, c.length, len(data), describe(got), describe(want))
	}
}
