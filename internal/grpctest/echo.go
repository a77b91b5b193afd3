// Package grpctest is a bidirectional-streaming gRPC service for tests of
// the proxy: each message a client sends comes back before it sends the
// next, so a call only progresses if both directions stream through every
// hop, with no hop holding a request body back until it ends.
package grpctest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Service is the echo service's description, written by hand (there is no
// generated code): one bidirectional method, Chat.
var Service = grpc.ServiceDesc{
	ServiceName: "azimuth.test.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		Handler:       chat,
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "grpctest",
}

// FullMethod is Chat's name on the wire.
const FullMethod = "/azimuth.test.Echo/Chat"

// Register adds the echo service to s.
func Register(s *grpc.Server) { s.RegisterService(&Service, nil) }

func chat(_ any, stream grpc.ServerStream) error {
	for {
		var m wrapperspb.StringValue
		if err := stream.RecvMsg(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		m.Value = "echo: " + m.Value
		if err := stream.SendMsg(&m); err != nil {
			return err
		}
	}
}

// PingPong opens a Chat on conn and sends n messages, each only after the
// echo of the one before came back, then closes its side and waits for the
// server's end of stream.
func PingPong(ctx context.Context, conn *grpc.ClientConn, n int) error {
	stream, err := conn.NewStream(ctx, &Service.Streams[0], FullMethod)
	if err != nil {
		return fmt.Errorf("opening the stream: %w", err)
	}
	for i := range n {
		want := fmt.Sprintf("ping %d", i)
		if err := stream.SendMsg(wrapperspb.String(want)); err != nil {
			return fmt.Errorf("sending message %d: %w", i, err)
		}
		var got wrapperspb.StringValue
		if err := stream.RecvMsg(&got); err != nil {
			return fmt.Errorf("receiving the echo of message %d: %w", i, err)
		}
		if got.Value != "echo: "+want {
			return fmt.Errorf("message %d came back as %q", i, got.Value)
		}
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("closing the stream: %w", err)
	}
	var extra wrapperspb.StringValue
	if err := stream.RecvMsg(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the last echo: %v, want the end of the stream", err)
	}
	return nil
}
