package norman_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/norman-ai/libnorman/bindings/go/norman"
)

// enumOf reads the NAME = VALUE entries of a C enum in the repository's include/norman.h.
func enumOf(t *testing.T, header, enum string) map[string]int {
	t.Helper()
	start := strings.Index(header, "typedef enum "+enum+" {")
	if start < 0 {
		t.Fatalf("no enum %s in norman.h", enum)
	}
	body := header[start:]
	body = body[:strings.Index(body, "} "+enum+";")]
	body = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(body, "")
	entries := map[string]int{}
	for _, m := range regexp.MustCompile(`(NORMAN_[A-Z0-9_]+) = (\d+)`).FindAllStringSubmatch(body, -1) {
		v, _ := strconv.Atoi(m[2])
		entries[m[1]] = v
	}
	if len(entries) == 0 {
		t.Fatalf("enum %s has no entries", enum)
	}
	return entries
}

// Every result code and message type of the C header has its Go constant, with the same number.
func TestCodesAndMessageTypesMatchTheHeader(t *testing.T) {
	path := os.Getenv("NORMAN_HEADER") // a generated header to check instead of the checked-in one
	if path == "" {
		path = "../../../include/norman.h"
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no norman.h of the repository here: %v", err)
	}
	header := string(text)
	for name, value := range enumOf(t, header, "norman_result") {
		if name == "NORMAN_OK" || name == "NORMAN_NO_EVENT" { // not failures: never an error
			continue
		}
		if got := norman.Code(value).String(); got != name {
			t.Errorf("%s = %d: the Go code %d is named %s", name, value, value, got)
		}
	}
	for name, value := range enumOf(t, header, "norman_msg_type") {
		if got := "NORMAN_MSG_" + norman.MsgType(value).String(); got != name {
			t.Errorf("%s = %d: the Go message type %d is %s", name, value, value, got)
		}
	}
}
