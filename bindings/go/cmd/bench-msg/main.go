// Command bench-msg is the Go part of the messaging benchmark (scripts/bench-msg-bindings.sh): against
// one `norman msg serve`, sequential 1 KiB echo requests, then pipelined one-way 1 KiB messages
// (NOTIFY_URI, which the broker takes without answering) closed by one request (all were
// processed when it is answered). It prints one line:
//
//	MSGBENCH lang=go seq_req_per_s=<float> pipelined_msg_per_s=<float>
//
// Usage: bench-msg [ADDR] (else NORMAN_MSG_ADDR). NORMAN_BENCH_SEQ and NORMAN_BENCH_PIPELINED set
// the counts (20000 and 200000). NORMAN_BENCH_CANCELLABLE=1 makes the sequential requests use a
// cancellable context (the asynchronous path) instead of context.Background() (the blocking one).
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

func count(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(fmt.Errorf("%s=%q: not a positive count", name, v))
		}
		return n
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-msg:", err)
	os.Exit(1)
}

func main() {
	addr := os.Getenv("NORMAN_MSG_ADDR")
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	if addr == "" {
		fail(fmt.Errorf("usage: bench-msg HOST:PORT (or NORMAN_MSG_ADDR)"))
	}
	seq, pipelined := count("NORMAN_BENCH_SEQ", 20000), count("NORMAN_BENCH_PIPELINED", 200000)
	client, err := norman.NewClient(norman.Config{})
	if err != nil {
		fail(err)
	}
	defer client.Close()
	conn, err := norman.Dial(context.Background(), client, addr, nil)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	ctx := context.Background()
	if os.Getenv("NORMAN_BENCH_CANCELLABLE") == "1" {
		c, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = c
	}
	request := func() {
		reply, err := conn.Request(ctx, norman.MsgRequestURI, "echo", payload)
		if err != nil {
			fail(err)
		}
		if !bytes.Equal(reply.Content, payload) {
			fail(fmt.Errorf("the echo differs from the request"))
		}
	}
	for i := 0; i < seq/20+1; i++ { // warm-up
		request()
	}
	start := time.Now()
	for i := 0; i < seq; i++ {
		request()
	}
	seqRate := float64(seq) / time.Since(start).Seconds()

	start = time.Now()
	for i := 0; i < pipelined; i++ {
		if err := conn.Send(norman.MsgNotifyURI, "bench", payload); err != nil {
			fail(err)
		}
	}
	request() // the barrier: the server answers in order, so every message before it was processed
	pipeRate := float64(pipelined) / time.Since(start).Seconds()
	fmt.Printf("MSGBENCH lang=go seq_req_per_s=%.1f pipelined_msg_per_s=%.1f\n", seqRate, pipeRate)
}
