package transfer

import (
	"errors"
	"net/url"

	"github.com/dozo-vault/dozo/client"
)

// opError wraps err with the operation that failed, keeping any hint.
func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &client.Error{Op: op, Err: err}
}

// hintError wraps err with op and a hint.
func hintError(op, hint string, err error) error {
	return &client.Error{Op: op, Err: err, Hint: hint}
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// URL: a presigned URL's query string is a credential.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
