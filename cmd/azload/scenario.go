package main

import (
	"context"
	"errors"
	"io"
)

func scenarioCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet")
}
