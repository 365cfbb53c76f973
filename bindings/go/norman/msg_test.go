package norman_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

var (
	hmacSecret = []byte("go-test-secret")
	cipherKey  = []byte("go-test-cipher-key")
	aeadKey    = bytes.Repeat([]byte{7}, 32)
)

// Each layer stack against `norman msg serve`: echo, the broker's store, NOT_FOUND as a
// *RemoteError, and a client with the wrong key getting no answer it could open.
func TestMsgRequestsToTheBrokerWithEachLayer(t *testing.T) {
	c := newClient(t, "")
	for _, tc := range []struct {
		name   string
		flags  func(t *testing.T) []string
		layers []norman.Layer
		wrong  []norman.Layer
		inner  []norman.Layer
	}{
		{"plain", func(*testing.T) []string { return nil }, nil, nil, nil},
		{"netaio", func(*testing.T) []string {
			return []string{"--secret", string(hmacSecret), "--cipher-key", string(cipherKey)}
		}, []norman.Layer{norman.NetaioCipher(cipherKey), norman.NetaioHMAC(hmacSecret)},
			[]norman.Layer{norman.NetaioCipher(cipherKey), norman.NetaioHMAC([]byte("not-the-secret"))}, nil},
		{"aead", func(t *testing.T) []string { return []string{"--aead-key-file", keyFile(t, aeadKey)} },
			[]norman.Layer{norman.AEAD(aeadKey)}, []norman.Layer{norman.AEAD(bytes.Repeat([]byte{8}, 32))}, nil},
		{"netaio with inner layers", func(*testing.T) []string {
			return []string{"--secret", string(hmacSecret), "--cipher-key", string(cipherKey),
				"--inner-secret", "inner-secret", "--inner-cipher-key", "inner-key"}
		}, []norman.Layer{norman.NetaioCipher(cipherKey), norman.NetaioHMAC(hmacSecret)}, nil,
			[]norman.Layer{norman.NetaioCipher([]byte("inner-key")).PlainURI().Field("iv2"),
				norman.NetaioHMAC([]byte("inner-secret")).Field("hmac2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := msgServe(t, tc.flags(t)...)
			conn := dial(t, c, addr, layers(t, tc.layers...))
			content := []byte("hello \x00 from go")
			var opts []norman.Option
			if tc.inner != nil {
				opts = append(opts, norman.WithLayers(layers(t, tc.inner...)))
			}
			if reply := request(t, conn, norman.MsgRequestURI, "echo", content, opts...); reply.Type != norman.MsgRespondURI ||
				reply.URI != "echo" || !bytes.Equal(reply.Content, content) {
				t.Fatalf("echo: %s %q %q", reply.Type, reply.URI, reply.Content)
			}
			if reply := request(t, conn, norman.MsgCreateURI, "thing", []byte("v1"), opts...); reply.Type != norman.MsgOK {
				t.Fatalf("create: %s", reply.Type)
			}
			if reply := request(t, conn, norman.MsgRequestURI, "thing", nil, opts...); string(reply.Content) != "v1" {
				t.Fatalf("stored: %q", reply.Content)
			}
			_, err := conn.Request(withTimeout(t, 10*time.Second), norman.MsgRequestURI, "no-such-thing", nil, opts...)
			if remote := expectRemote(t, "missing uri", err, norman.MsgNotFound); remote.Reply.URI != "no-such-thing" {
				t.Fatalf("the NOT_FOUND reply has uri %q", remote.Reply.URI)
			}
			if tc.wrong == nil {
				return
			}
			stranger := dial(t, c, addr, layers(t, tc.wrong...))
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err = stranger.Request(ctx, norman.MsgRequestURI, "echo", content)
			if !errors.Is(err, norman.ErrTimeout) && !errors.Is(err, norman.ErrMsgAuth) &&
				!errors.Is(err, norman.ErrMsgRemote) && !errors.Is(err, norman.ErrClosed) {
				t.Fatalf("a client with the wrong key: %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "not-the-secret") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

// A Go server and Go clients: handlers' replies, errors, panics, silence, per-handler layers,
// any-uri handlers, Once, the call's peer, and concurrent requests matched to their replies.
func TestMsgGoServerAndClient(t *testing.T) {
	c := newClient(t, "")
	outer := layers(t, norman.AEAD(aeadKey))
	inner := layers(t, norman.NetaioCipher([]byte("inner")).PlainURI(), norman.NetaioHMAC([]byte("inner-secret")))
	srv, err := norman.NewServer(c, &norman.ServerOptions{Layers: outer})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	peers := make(chan string, 1)
	handlers := map[string]norman.HandlerFunc{
		"echo": echo,
		"fail": func(context.Context, *norman.Call) (*norman.Reply, error) { return nil, errors.New("boom") },
		"missing": func(context.Context, *norman.Call) (*norman.Reply, error) {
			return nil, norman.ReplyError(norman.MsgNotFound, []byte("nothing here"))
		},
		"silent": func(context.Context, *norman.Call) (*norman.Reply, error) { return nil, nil },
		"panic":  func(context.Context, *norman.Call) (*norman.Reply, error) { panic("handler bug") },
		"peer": func(_ context.Context, call *norman.Call) (*norman.Reply, error) {
			peer, err := call.Peer()
			if err != nil {
				return nil, err
			}
			peers <- peer
			return &norman.Reply{Type: norman.MsgOK, Content: []byte(fmt.Sprint(call.ConnID))}, nil
		},
	}
	for uri, h := range handlers {
		if err := srv.Handle(norman.MsgRequestURI, uri, h); err != nil {
			t.Fatalf("handle %s: %v", uri, err)
		}
	}
	if err := srv.Handle(norman.MsgRequestURI, "secret", echo, norman.WithLayers(inner)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Handle(norman.MsgRequestURI, "once", echo, norman.Once()); err != nil {
		t.Fatal(err)
	}
	var anyURI sync.Map
	if err := srv.Handle(norman.MsgCreateURI, "", func(_ context.Context, call *norman.Call) (*norman.Reply, error) {
		anyURI.Store(call.URI, string(call.Content))
		return &norman.Reply{Type: norman.MsgOK}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") || strings.HasSuffix(srv.Addr(), ":0") {
		t.Fatalf("Addr %q", srv.Addr())
	}
	conn := dial(t, c, srv.Addr(), outer)
	ctx := withTimeout(t, 10*time.Second)

	if reply := request(t, conn, norman.MsgRequestURI, "echo", []byte("x")); string(reply.Content) != "x" {
		t.Fatalf("echo %q", reply.Content)
	}
	_, err = conn.Request(ctx, norman.MsgRequestURI, "fail", nil)
	if r := expectRemote(t, "failing handler", err, norman.MsgError); string(r.Reply.Content) != "boom" {
		t.Fatalf("the ERROR reply says %q", r.Reply.Content)
	}
	_, err = conn.Request(ctx, norman.MsgRequestURI, "missing", nil)
	if r := expectRemote(t, "ReplyError", err, norman.MsgNotFound); string(r.Reply.Content) != "nothing here" {
		t.Fatalf("the NOT_FOUND reply says %q", r.Reply.Content)
	}
	_, err = conn.Request(ctx, norman.MsgRequestURI, "panic", nil)
	expectRemote(t, "panicking handler", err, norman.MsgError)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = conn.Request(short, norman.MsgRequestURI, "silent", nil)
	cancel()
	if !errors.Is(err, norman.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a handler that answers nothing: %v", err)
	}
	reply := request(t, conn, norman.MsgRequestURI, "peer", nil)
	if peer := <-peers; !strings.HasPrefix(peer, "127.0.0.1:") || string(reply.Content) == "0" {
		t.Fatalf("peer %q, conn id %s", peer, reply.Content)
	}
	// Per-handler layers: the same inner layers on the request open it and seal the reply.
	if reply := request(t, conn, norman.MsgRequestURI, "secret", []byte("s"), norman.WithLayers(inner)); string(reply.Content) != "s" {
		t.Fatalf("inner layers: %q", reply.Content)
	}
	// Without them the handler cannot open the message: no RESPOND_URI comes back.
	short, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	reply, err = conn.Request(short, norman.MsgRequestURI, "secret", []byte("s"))
	cancel()
	if err == nil {
		t.Fatalf("a message without the inner layers was answered: %s %q", reply.Type, reply.Content)
	}
	request(t, conn, norman.MsgRequestURI, "once", nil)
	short, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = conn.Request(short, norman.MsgRequestURI, "once", nil)
	cancel()
	if err == nil {
		t.Fatal("a Once handler answered twice")
	}
	if reply := request(t, conn, norman.MsgCreateURI, "a/b", []byte("v")); reply.Type != norman.MsgOK || reply.URI != "a/b" {
		t.Fatalf("any-uri handler: %s %q", reply.Type, reply.URI)
	}
	if v, _ := anyURI.Load("a/b"); v != "v" {
		t.Fatalf("the any-uri handler saw %v", v)
	}

	// Several goroutines on one connection and on their own: each gets its own reply.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			own := conn
			if g%2 == 1 {
				var err error
				if own, err = norman.Dial(ctx, c, srv.Addr(), &norman.DialOptions{Layers: outer}); err != nil {
					errs <- err
					return
				}
				defer own.Close()
			}
			for i := 0; i < 25; i++ {
				want := []byte(fmt.Sprintf("g%d-%d", g, i))
				reply, err := own.Request(ctx, norman.MsgRequestURI, "echo", want)
				if err == nil && !bytes.Equal(reply.Content, want) {
					err = fmt.Errorf("asked %q, got %q", want, reply.Content)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A context ends a request waiting on a slow handler; the connection stays usable. Closing the
// connection ends the waiting requests with ErrClosed.
func TestMsgRequestContextAndClose(t *testing.T) {
	c := newClient(t, "")
	srv, err := norman.NewServer(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	release := make(chan struct{})
	handlerCtxDone := make(chan struct{})
	var once sync.Once
	if err := srv.Handle(norman.MsgRequestURI, "slow", func(ctx context.Context, call *norman.Call) (*norman.Reply, error) {
		select {
		case <-release:
		case <-ctx.Done():
			once.Do(func() { close(handlerCtxDone) })
		}
		return norman.Respond(nil), nil
	}); err != nil {
		t.Fatal(err)
	}
	srv.Handle(norman.MsgRequestURI, "echo", echo)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, c, srv.Addr(), nil)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = conn.Request(ctx, norman.MsgRequestURI, "slow", nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, norman.ErrCancelled) {
		t.Fatalf("cancelled request: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = conn.Request(ctx, norman.MsgRequestURI, "slow", nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, norman.ErrTimeout) {
		t.Fatalf("request past its deadline: %v", err)
	}
	if reply := request(t, conn, norman.MsgRequestURI, "echo", []byte("still")); string(reply.Content) != "still" {
		t.Fatalf("after the cancellations: %q", reply.Content)
	}
	_, err = conn.Request(ctx, norman.MsgRequestURI, "echo", nil) // ctx has ended already
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request with an ended context: %v", err)
	}

	// Requests blocked in the library (background context: the blocking call) end on Close.
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := conn.Request(context.Background(), norman.MsgRequestURI, "slow", nil)
			results <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, norman.ErrClosed) && !errors.Is(err, norman.ErrCancelled) {
				t.Fatalf("a request waiting when the connection closed: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end a waiting request")
		}
	}
	_, err = conn.Request(context.Background(), norman.MsgRequestURI, "echo", nil)
	expectCode(t, "request on a closed connection", err, norman.ErrClosed)
	expectCode(t, "send on a closed connection", conn.Send(norman.MsgPublishURI, "x", nil), norman.ErrClosed)
	conn.Close() // twice is fine

	// Closing the server ends its handlers' context.
	srv.Close()
	select {
	case <-handlerCtxDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the handlers' context did not end with the server")
	}
	close(release)
}

// Notifications from `norman msg serve` (pub/sub between two connections) and from a Go server
// (Notify, Broadcast); the channel closes when the connection or the server closes.
func TestMsgNotifications(t *testing.T) {
	c := newClient(t, "")
	broker := msgServe(t)
	sub, pub := dial(t, c, broker, nil), dial(t, c, broker, nil)
	if reply := request(t, sub, norman.MsgSubscribeURI, "news", nil); reply.Type != norman.MsgConfirmSubscribe {
		t.Fatalf("subscribe: %s", reply.Type)
	}
	notes := sub.Notifications()
	for i := 0; i < 3; i++ {
		request(t, pub, norman.MsgPublishURI, "news", []byte(fmt.Sprint(i)))
	}
	for i := 0; i < 3; i++ {
		m, ok := receive(t, notes)
		if !ok || m.Type != norman.MsgNotifyURI || m.URI != "news" || string(m.Content) != fmt.Sprint(i) {
			t.Fatalf("notification %d: %+v (open %v)", i, m, ok)
		}
	}
	sub.Close()
	expectClosed(t, "after Close", notes)
	if sub.Err() != nil {
		t.Fatalf("Err after Close: %v", sub.Err())
	}

	srv, err := norman.NewServer(c, &norman.ServerOptions{AutoSubscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, c, srv.Addr(), nil), dial(t, c, srv.Addr(), nil)
	if reply := request(t, a, norman.MsgSubscribeURI, "topic", nil); reply.Type != norman.MsgConfirmSubscribe {
		t.Fatalf("auto subscribe: %s", reply.Type)
	}
	request(t, b, norman.MsgSubscribeURI, "other", nil)
	n, err := srv.Notify("topic", []byte("for a"))
	if err != nil || n != 1 {
		t.Fatalf("notify: %d, %v", n, err)
	}
	if m, _ := receive(t, a.Notifications()); m.Type != norman.MsgNotifyURI || string(m.Content) != "for a" {
		t.Fatalf("a got %+v", m)
	}
	custom := norman.MsgFirstCustom + 2
	if n, err := srv.Broadcast(custom, "all", []byte("hi")); err != nil || n != 2 {
		t.Fatalf("broadcast: %d, %v", n, err)
	}
	for name, conn := range map[string]*norman.Conn{"a": a, "b": b} {
		if m, _ := receive(t, conn.Notifications()); m.Type != custom || m.URI != "all" || string(m.Content) != "hi" {
			t.Fatalf("%s got %+v", name, m)
		}
	}
	// b never subscribed to topic: the broadcast was the first thing it got, and nothing else waits.
	srv.Close()
	expectClosed(t, "after the server closed", a.Notifications())
	expectClosed(t, "after the server closed", b.Notifications())
}

// Bad arguments and states give their documented codes, and keys never print.
func TestMsgBadInput(t *testing.T) {
	c := newClient(t, "")
	ctx := withTimeout(t, 10*time.Second)
	for name, l := range map[string]norman.Layer{
		"AEAD key of 16 bytes": norman.AEAD(make([]byte, 16)),
		"empty AEAD key":       norman.AEAD(nil),
		"empty HMAC secret":    norman.NetaioHMAC(nil),
		"empty cipher key":     norman.NetaioCipher([]byte{}),
		"zero Layer":           {},
	} {
		_, err := norman.NewLayers(l)
		expectCode(t, name, err, norman.ErrInvalidArgument)
	}
	secret := norman.NetaioHMAC([]byte("very-secret-value"))
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		if text := fmt.Sprintf(format, secret); strings.Contains(text, "very-secret") || strings.Contains(text, "766572792d") {
			t.Fatalf("%s shows the secret: %s", format, text)
		}
	}

	_, err := norman.Dial(ctx, c, deadAddress(t), nil)
	expectCode(t, "dial a dead port", err, norman.ErrConnect)
	_, err = norman.Dial(ctx, c, "127.0.0.1:1\x00", nil)
	expectCode(t, "NUL in an address", err, norman.ErrInvalidArgument)
	_, err = norman.Dial(ctx, c, "not an address", nil)
	if err == nil {
		t.Fatal("dial of a malformed address")
	}
	_, err = norman.Dial(ctx, nil, "127.0.0.1:1", nil)
	expectCode(t, "nil client", err, norman.ErrNullArgument)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = norman.Dial(ended, c, deadAddress(t), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a cancelled context: %v", err)
	}
	// A server that accepts and never answers: the dial succeeds or times out at the deadline,
	// and a request times out.
	silent := silentServer(t)
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if conn, err := norman.Dial(short, c, silent, nil); err == nil {
		_, err = conn.Request(short, norman.MsgRequestURI, "echo", nil)
		conn.Close()
		if !errors.Is(err, norman.ErrTimeout) {
			t.Fatalf("request to a silent server: %v", err)
		}
	} else if !errors.Is(err, norman.ErrTimeout) {
		t.Fatalf("dial of a silent server: %v", err)
	}
	cancelShort()

	conn := dial(t, c, msgServe(t), nil)
	_, err = conn.Request(ctx, norman.MsgType(26), "echo", nil)
	expectCode(t, "unknown message type", err, norman.ErrInvalidArgument)
	_, err = conn.Request(ctx, norman.MsgRequestURI, "echo", make([]byte, 70000))
	if !errors.Is(err, norman.ErrOversize) && !errors.Is(err, norman.ErrInvalidArgument) {
		t.Fatalf("a message past netaio's 65,422 bytes: %v", err)
	}
	//lint:ignore SA1012 a nil context is what is being tested
	_, err = conn.Request(nil, norman.MsgRequestURI, "echo", nil) //nolint:staticcheck
	expectCode(t, "nil context", err, norman.ErrNullArgument)
	if reply := request(t, conn, norman.MsgRequestURI, "echo", []byte("ok")); string(reply.Content) != "ok" {
		t.Fatalf("the connection after refused calls: %q", reply.Content)
	}

	srv, err := norman.NewServer(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	expectCode(t, "nil handler", srv.Handle(norman.MsgRequestURI, "x", nil), norman.ErrNullArgument)
	expectCode(t, "handler of an unknown type", srv.Handle(26, "x", echo), norman.ErrInvalidArgument)
	if err := srv.Listen("127.0.0.1"); err == nil {
		t.Fatal("listen without a port")
	}
	if err := srv.Listen(msgServe(t)); err == nil {
		t.Fatal("listen on a port in use")
	}
	// A Call's methods after its handler returned.
	kept := make(chan *norman.Call, 1)
	srv.Handle(norman.MsgRequestURI, "keep", func(_ context.Context, call *norman.Call) (*norman.Reply, error) {
		kept <- call
		return norman.Respond(nil), nil
	})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	request(t, dial(t, c, srv.Addr(), nil), norman.MsgRequestURI, "keep", nil)
	late := <-kept
	expectCode(t, "subscribe after the handler returned", late.Subscribe("x"), norman.ErrState)
	if _, err := late.Peer(); !errors.Is(err, norman.ErrState) {
		t.Fatalf("peer after the handler returned: %v", err)
	}
	srv.Close()
	_, err = srv.Notify("x", nil)
	expectCode(t, "notify on a closed server", err, norman.ErrClosed)
	expectCode(t, "handle on a closed server", srv.Handle(norman.MsgRequestURI, "x", echo), norman.ErrClosed)
}

// Closing the client first closes what was made from it (the C API frees those before the client).
func TestClosingTheClientClosesItsMessaging(t *testing.T) {
	c, err := norman.NewClient(norman.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := norman.NewServer(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle(norman.MsgRequestURI, "echo", echo)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, c, srv.Addr(), nil)
	notes := conn.Notifications()
	l, err := norman.ListenBSON(c, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	request(t, conn, norman.MsgRequestURI, "echo", nil)
	c.Close()
	expectClosed(t, "notifications after the client closed", notes)
	_, err = conn.Request(context.Background(), norman.MsgRequestURI, "echo", nil)
	expectCode(t, "request after the client closed", err, norman.ErrClosed)
	_, err = srv.Notify("x", nil)
	expectCode(t, "notify after the client closed", err, norman.ErrClosed)
	_, err = l.Accept(context.Background())
	expectCode(t, "accept after the client closed", err, norman.ErrClosed)
	_, err = norman.Dial(context.Background(), c, srv.Addr(), nil)
	expectCode(t, "dial with a closed client", err, norman.ErrClosed)
}
