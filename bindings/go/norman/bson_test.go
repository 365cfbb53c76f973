package norman_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// stringDoc is {key: value} (a BSON string element) built by hand.
func stringDoc(key, value string) []byte {
	var body bytes.Buffer
	body.WriteByte(0x02)
	body.WriteString(key)
	body.WriteByte(0)
	binary.Write(&body, binary.LittleEndian, int32(len(value)+1))
	body.WriteString(value)
	body.WriteByte(0)
	body.WriteByte(0) // end of the document
	doc := make([]byte, 4, 4+body.Len())
	binary.LittleEndian.PutUint32(doc, uint32(4+body.Len()))
	return append(doc, body.Bytes()...)
}

// int32Of reads {key: int32} by hand: the check a bson.Raw user would make with Lookup.
func int32Of(t *testing.T, doc []byte, key string) int32 {
	t.Helper()
	if len(doc) < 5 || int(binary.LittleEndian.Uint32(doc)) != len(doc) || doc[len(doc)-1] != 0 {
		t.Fatalf("not one document: % x", doc)
	}
	want := append([]byte{0x10}, append([]byte(key), 0)...)
	if !bytes.HasPrefix(doc[4:], want) || len(doc) < 4+len(want)+4+1 {
		t.Fatalf("no int32 %q first in % x", key, doc)
	}
	return int32(binary.LittleEndian.Uint32(doc[4+len(want):]))
}

// Documents through `norman bson serve --echo`: exact bytes back, JSON both ways, and refused
// documents that send nothing.
func TestBSONRoundTripsWithTheEchoServer(t *testing.T) {
	c := newClient(t, "")
	addr := startProgram(t, "norman bson listening on ", "bson", "serve", "--listen", "127.0.0.1:0", "--echo")
	ctx := withTimeout(t, 10*time.Second)
	conn, err := norman.DialBSON(ctx, c, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	doc := stringDoc("message", "hello!")
	if len(doc) != 25 { // BSON_SOCKET.md's example
		t.Fatalf("hand-built document of %d bytes", len(doc))
	}
	if err := conn.Write(doc); err != nil {
		t.Fatal(err)
	}
	back, err := conn.Read(ctx)
	if err != nil || !bytes.Equal(back, doc) {
		t.Fatalf("echo: % x, %v", back, err)
	}
	if err := conn.WriteJSON(`{"n": 42}`); err != nil {
		t.Fatal(err)
	}
	back, err = conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := int32Of(t, back, "n"); n != 42 {
		t.Fatalf("n = %d", n)
	}
	json, err := norman.BSONToJSON(doc)
	if err != nil || json != `{"message":"hello!"}` {
		t.Fatalf("to JSON: %s, %v", json, err)
	}
	fromJSON, err := norman.BSONFromJSON(`{"message": "hello!"}`)
	if err != nil || !bytes.Equal(fromJSON, doc) {
		t.Fatalf("from JSON: % x, %v", fromJSON, err)
	}
	// Refused before sending: the next document read is still the one sent after them.
	for name, bad := range map[string][]byte{
		"empty":               nil,
		"two documents":       append(append([]byte{}, doc...), doc...),
		"length prefix wrong": append([]byte{26, 0, 0, 0}, doc[4:]...),
		"no trailing NUL":     append(append([]byte{}, doc[:24]...), 1),
	} {
		expectCode(t, "write of "+name, conn.Write(bad), norman.ErrInvalidBSON)
	}
	expectCode(t, "invalid JSON", conn.WriteJSON("{not json"), norman.ErrInvalidJSON)
	_, err = norman.BSONToJSON([]byte{5, 0, 0})
	expectCode(t, "to JSON of 3 bytes", err, norman.ErrInvalidBSON)
	_, err = norman.BSONFromJSON("[1, 2]")
	if err == nil {
		t.Fatal("a JSON array became a document")
	}
	last := stringDoc("last", "one")
	if err := conn.Write(last); err != nil {
		t.Fatal(err)
	}
	if back, err := conn.Read(ctx); err != nil || !bytes.Equal(back, last) {
		t.Fatalf("after the refused writes: % x, %v", back, err)
	}
	// Nothing more comes: a deadline ends the read, and the connection stays usable.
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = conn.Read(short)
	cancel()
	if !errors.Is(err, norman.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	_, err = conn.Read(cancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read: %v", err)
	}
	if err := conn.Write(doc); err != nil {
		t.Fatal(err)
	}
	if back, err := conn.Read(ctx); err != nil || !bytes.Equal(back, doc) {
		t.Fatalf("after the timeouts: % x, %v", back, err)
	}
	conn.Close()
	_, err = conn.Read(ctx)
	expectCode(t, "read after Close", err, norman.ErrClosed)
	expectCode(t, "write after Close", conn.Write(doc), norman.ErrClosed)
}

// A Go listener against a Go client and against raw sockets sending broken frames.
func TestBSONListenerAndBrokenPeers(t *testing.T) {
	c := newClient(t, "")
	ctx := withTimeout(t, 20*time.Second)
	l, err := norman.ListenBSON(c, "127.0.0.1:0", &norman.BSONOptions{MaxDocument: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accept := func() *norman.BSONConn {
		t.Helper()
		conn, err := l.Accept(ctx)
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	client, err := norman.DialBSON(ctx, c, l.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	server := accept()
	doc := stringDoc("k", "v")
	if err := client.Write(doc); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Read(ctx); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("server read: % x, %v", got, err)
	}
	if err := server.Write(stringDoc("reply", "r")); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4)
	if err := client.ReadExact(ctx, head); err != nil || binary.LittleEndian.Uint32(head) != uint32(len(stringDoc("reply", "r"))) {
		t.Fatalf("read exact: % x, %v", head, err)
	}
	// Past the listener's 64-byte limit: refused before allocating.
	if err := client.Write(stringDoc("big", string(bytes.Repeat([]byte("x"), 100)))); err != nil {
		t.Fatal(err)
	}
	_, err = server.Read(ctx)
	expectCode(t, "a document past MaxDocument", err, norman.ErrOversize)
	client.Close()

	// A clean end between documents: io.EOF and ErrClosed.
	client, err = norman.DialBSON(ctx, c, l.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = accept()
	client.Write(doc)
	client.Close()
	if got, err := server.Read(ctx); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("the document before the close: % x, %v", got, err)
	}
	_, err = server.Read(ctx)
	if !errors.Is(err, io.EOF) || !errors.Is(err, norman.ErrClosed) {
		t.Fatalf("read at the clean end: %v", err)
	}

	// Raw peers: a document cut short, and a length prefix below the minimum.
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  norman.Code
	}{
		{"a document cut short", doc[:10], norman.ErrTruncated},
		{"a length prefix of 3", []byte{3, 0, 0, 0, 0, 0}, norman.ErrProtocol},
		{"a bad element type", append([]byte{8, 0, 0, 0, 0x77, 0, 0}, 0), norman.ErrInvalidBSON},
	} {
		raw, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		server := accept()
		raw.Write(tc.bytes)
		raw.Close()
		_, err = server.Read(ctx)
		expectCode(t, tc.name, err, tc.code)
	}

	_, err = norman.DialBSON(ctx, c, deadAddress(t), nil)
	expectCode(t, "dial a dead port", err, norman.ErrConnect)
	_, err = norman.ListenBSON(c, l.Addr(), nil)
	if err == nil {
		t.Fatal("listen on a port in use")
	}
	_, err = norman.ListenBSON(c, "127.0.0.1:0", &norman.BSONOptions{MaxDocument: 1 << 31})
	expectCode(t, "MaxDocument of 2 GiB", err, norman.ErrInvalidArgument)
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	_, err = l.Accept(short)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("accept past the deadline: %v", err)
	}
}
