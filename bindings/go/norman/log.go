package norman

/*
#include "shim.h"
*/
import "C"

import (
	"sync"
	"sync/atomic"
)

// LogLevel is the severity of a library log record.
type LogLevel int32

const (
	LogOff   LogLevel = C.NORMAN_LOG_OFF
	LogError LogLevel = C.NORMAN_LOG_ERROR
	LogWarn  LogLevel = C.NORMAN_LOG_WARN
	LogInfo  LogLevel = C.NORMAN_LOG_INFO
	LogDebug LogLevel = C.NORMAN_LOG_DEBUG
	LogTrace LogLevel = C.NORMAN_LOG_TRACE
)

func (l LogLevel) String() string {
	switch l {
	case LogError:
		return "error"
	case LogWarn:
		return "warn"
	case LogInfo:
		return "info"
	case LogDebug:
		return "debug"
	case LogTrace:
		return "trace"
	default:
		return "off"
	}
}

// LogFunc receives one log record of the library. It runs on whatever thread logs (the library's
// runtime threads included): it must be safe for concurrent use and return quickly.
type LogFunc func(level LogLevel, target, message string)

var (
	logMu   sync.Mutex   // serialises SetLogger
	logSink atomic.Value // of LogFunc
)

// SetLogger sends the library's log records up to max to fn, for every client of the process; a
// nil fn goes back to stderr filtered by NORMAN_LOG. Records never contain secrets.
func SetLogger(max LogLevel, fn LogFunc) error {
	logMu.Lock()
	defer logMu.Unlock()
	enabled := C.int(0)
	if fn != nil {
		logSink.Store(fn)
		enabled = 1
	}
	return call("set logger", func() C.enum_norman_result { return C.go_set_log_callback(enabled, C.int32_t(max)) })
}

//export goNormanLog
func goNormanLog(level C.int32_t, target, message *C.char) {
	if fn, ok := logSink.Load().(LogFunc); ok && fn != nil {
		fn(LogLevel(level), C.GoString(target), C.GoString(message))
	}
}
