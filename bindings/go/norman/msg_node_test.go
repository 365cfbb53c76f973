package norman_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// testGroup is the multicast group of the node tests, on a port free when the tests start; the
// interface is pinned to 127.0.0.1, so nothing leaves this machine.
var testGroup = func() string {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.LocalAddr().String())
	return "239.255.77.78:" + port
}()

// deadUDPAddress is a loopback UDP port nothing listens on.
func deadUDPAddress(t *testing.T) string {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().String()
}

func newNode(t *testing.T, c *norman.Client, l *norman.Layers) *norman.Node {
	t.Helper()
	n, err := norman.NewNode(c, norman.NodeOptions{Bind: "127.0.0.1:0", Group: testGroup,
		MulticastInterface: "127.0.0.1", Layers: l})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Two nodes on loopback: a request answered by a handler, a datagram no handler takes, errors as
// *RemoteError, peers discovered by direct advertisement, and Close ending Messages.
func TestMsgUDPNodes(t *testing.T) {
	c := newClient(t, "")
	l := layers(t, norman.AEAD(aeadKey))
	a, b := newNode(t, c, l), newNode(t, c, l)
	if err := a.Handle(norman.MsgRequestURI, "echo", echo); err != nil {
		t.Fatal(err)
	}
	a.Handle(norman.MsgRequestURI, "missing", func(context.Context, *norman.Call) (*norman.Reply, error) {
		return nil, norman.ReplyError(norman.MsgNotFound, nil)
	})
	ctx := withTimeout(t, 10*time.Second)
	reply, err := b.Request(ctx, a.Addr(), norman.MsgRequestURI, "echo", []byte("udp"))
	if err != nil || reply.Type != norman.MsgRespondURI || !bytes.Equal(reply.Content, []byte("udp")) {
		t.Fatalf("echo over UDP: %+v, %v", reply, err)
	}
	_, err = b.Request(ctx, a.Addr(), norman.MsgRequestURI, "missing", nil)
	expectRemote(t, "NOT_FOUND over UDP", err, norman.MsgNotFound)
	custom := norman.MsgFirstCustom + 5
	if err := b.Send(a.Addr(), custom, "loose", []byte("d")); err != nil {
		t.Fatal(err)
	}
	if m, ok := receive(t, a.Messages()); !ok || m.Type != custom || m.URI != "loose" || string(m.Content) != "d" {
		t.Fatalf("unhandled datagram: %+v (open %v)", m, ok)
	}
	// A node without the layers: the AEAD layer answers AUTH_ERROR.
	stranger := newNode(t, c, nil)
	_, err = stranger.Request(ctx, a.Addr(), norman.MsgRequestURI, "echo", []byte("x"))
	expectRemote(t, "a request without the layers", err, norman.MsgAuthError)
	// A request to a port nobody listens on: the context's deadline or cancellation ends the wait.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = a.Request(short, deadUDPAddress(t), norman.MsgRequestURI, "echo", []byte("x"))
	cancel()
	if !errors.Is(err, norman.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request past its deadline: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = a.Request(cancelled, deadUDPAddress(t), norman.MsgRequestURI, "echo", []byte("x"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled request: %v", err)
	}

	for name, n := range map[string]*norman.Node{"a": a, "b": b} {
		if err := n.ManagePeers([]byte("node-"+name), []byte("data-"+name), 100*time.Millisecond, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Multicast(norman.MsgFirstCustom, "hello", nil); err != nil {
		t.Fatalf("multicast: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		peers, err := b.Peers()
		if err != nil {
			t.Fatal(err)
		}
		if len(peers) > 0 {
			p := peers[0]
			if string(p.ID) != "node-a" || string(p.Data) != "data-a" || p.Addr != a.Addr() {
				t.Fatalf("b's peer: %+v (a is %s)", p, a.Addr())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b heard no peer within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	expectCode(t, "manage peers every 0", a.ManagePeers([]byte("x"), nil, 0, time.Second), norman.ErrInvalidArgument)
	_, err = norman.NewNode(c, norman.NodeOptions{Bind: "127.0.0.1:0", Group: "127.0.0.2", MulticastInterface: "127.0.0.1"})
	expectCode(t, "a group that is not multicast", err, norman.ErrInvalidArgument)
	_, err = norman.NewNode(c, norman.NodeOptions{Bind: "no port"})
	expectCode(t, "a bind address without a port", err, norman.ErrInvalidArgument)
	messages := a.Messages()
	a.Close()
	expectClosed(t, "Messages after Close", messages)
	_, err = a.Request(ctx, b.Addr(), norman.MsgRequestURI, "echo", nil)
	expectCode(t, "request on a closed node", err, norman.ErrClosed)
}
