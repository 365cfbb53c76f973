package norman_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

func TestLogRecordsReachTheLoggerWithoutSecrets(t *testing.T) {
	var mu sync.Mutex
	var records []string
	err := norman.SetLogger(norman.LogDebug, func(level norman.LogLevel, target, message string) {
		mu.Lock()
		records = append(records, level.String()+" "+target+": "+message)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer norman.SetLogger(norman.LogOff, nil)

	const token = "a-token-that-must-never-be-logged"
	c := newClient(t, token)
	if _, err := c.GetStatusFlags(context.Background(), nil); err == nil {
		t.Fatal("a made-up token was accepted")
	}
	c.Close()
	if err := norman.SetLogger(norman.LogOff, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(records, "\n")
	for _, want := range []string{"client created", "completed", "client freed"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q among the log records:\n%s", want, all)
		}
	}
	if strings.Contains(all, token) {
		t.Fatalf("the token was logged:\n%s", all)
	}
}
