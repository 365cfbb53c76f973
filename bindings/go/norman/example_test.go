package norman_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// A whole session: sign up on the backend NORMAN_BASE_URL names, create a model with a "File"
// asset, stream a file into it, read it back.
func Example() {
	ctx := context.Background()
	client, err := norman.NewClient(norman.Config{FromEnvironment: true})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	login, err := client.SignupDefault(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := client.SetToken(login.AccessToken); err != nil {
		log.Fatal(err)
	}
	account := login.Account.ID
	model, err := client.CreateModel(ctx, norman.NewModel(account, "example", "v1", "File"))
	if err != nil {
		log.Fatal(err)
	}
	target := norman.AssetTarget(account, model.ID, model.AssetID("File"))

	// An upload is an io.WriteCloser: Close ends the stream and has the backend check it.
	content := strings.Repeat("Hello from the Go binding of libnorman.\n", 1000)
	upload, err := client.BeginUpload(ctx, target, int64(len(content)))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(upload, strings.NewReader(content)); err != nil {
		log.Fatal(err)
	}
	if err := upload.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("uploaded  ", upload.Checksum())

	// A download is an io.ReadCloser.
	download, err := client.Retrieve(ctx, target)
	if err != nil {
		log.Fatal(err)
	}
	defer download.Close()
	sum, err := norman.Checksum(download)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("downloaded", sum)
	// Output:
	// uploaded   37bdf09c02b8affd
	// downloaded 37bdf09c02b8affd
}

// Whole files go in one call, with progress.
func ExampleClient_PushFile() {
	ctx := context.Background()
	client, err := norman.NewClient(norman.Config{FromEnvironment: true})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	target := norman.AssetTarget("account-id", "model-id", "asset-id")
	sent, err := client.PushFile(ctx, target, "weights.bin", func(sent, total uint64) {
		fmt.Printf("\r%d / %d bytes", sent, total)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("\nchecksum", sent.Checksum)
}

func ExampleChecksum() {
	sum, err := norman.Checksum(strings.NewReader("norman"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum, sum == norman.ChecksumBytes([]byte("norman")))
	// Output: 88d209e7a87ee85f true
}
