package norman_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// A messaging server whose handler is a Go func, and a client asking it, both sealed with the
// AEAD layer.
func ExampleNewServer() {
	ctx := context.Background()
	client, err := norman.NewClient(norman.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	layers, err := norman.NewLayers(norman.AEAD([]byte(strings.Repeat("k", 32))))
	if err != nil {
		log.Fatal(err)
	}

	srv, err := norman.NewServer(client, &norman.ServerOptions{Layers: layers})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	srv.Handle(norman.MsgRequestURI, "greet", func(ctx context.Context, call *norman.Call) (*norman.Reply, error) {
		if len(call.Content) == 0 {
			return nil, errors.New("who is there?") // an ERROR reply
		}
		return norman.Respond([]byte("hello, " + string(call.Content))), nil
	})
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}

	conn, err := norman.Dial(ctx, client, srv.Addr(), &norman.DialOptions{Layers: layers})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	reply, err := conn.Request(ctx, norman.MsgRequestURI, "greet", []byte("gopher"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Type, string(reply.Content))
	_, err = conn.Request(ctx, norman.MsgRequestURI, "greet", nil)
	var remote *norman.RemoteError
	if errors.As(err, &remote) {
		fmt.Println(remote.Reply.Type, string(remote.Reply.Content))
	}
	// Output:
	// RESPOND_URI hello, gopher
	// ERROR who is there?
}
