package main

import (
	"bytes"
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// rawCodec sends and receives already-encoded protobuf bytes (*[]byte).
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// keyedTemplate encodes request 0 with customer number 0000000 and returns
// it with the offset of those seven digits, which requests overwrite.
func keyedTemplate(shape Shape) ([]byte, int) {
	shape.Keys = 1
	encoded, err := proto.Marshal(shape.CheckRequest(0))
	if err != nil {
		fail(err)
	}
	marker := []byte(shape.CustomerPrefix + "0000000")
	offset := bytes.Index(encoded, marker)
	if offset < 0 || bytes.Count(encoded, marker) != 1 {
		fail(fmt.Errorf("customer id %q not found exactly once in the encoded CheckRequest", marker))
	}
	return encoded, offset + len(shape.CustomerPrefix)
}
