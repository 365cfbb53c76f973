module github.com/norman-ai/libnorman/bindings/go

go 1.19
