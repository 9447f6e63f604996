package pgrepl_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/walweave/walweave/internal/pgrepl"
)

// Read backend messages from a connection (here, bytes as a server would send them): each body
// is a slice of the reader's buffer, valid until the next call of Next.
func ExampleMessageReader() {
	stream := []byte{
		'd', 0, 0, 0, 9, 'd', 'a', 't', 'a', '!', // CopyData: "data!"
		'c', 0, 0, 0, 4, // CopyDone
	}
	r := pgrepl.NewMessageReader(bytes.NewReader(stream), 0)
	for {
		typ, body, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%c %q\n", typ, body)
	}
	// Output:
	// d "data!"
	// c ""
}
