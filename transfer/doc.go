// Package transfer moves dozo files between the researcher's machine and
// storage, over the dozod API client (package client): resumable upload
// with its journal, verified fetch to a file, a device or a pipe,
// random-access Open (for mount and region fetches), region fetch, and
// checking a local copy against the catalog.
//
// Pieces move through presigned URLs that dozod issues (PresignedTarget,
// presigned in batches); an upload writes each piece on the target dozod
// placed it on, after checking that placement is well formed.
//
// Security properties kept throughout:
//   - plaintext and file keys never leave this process unencrypted:
//     storage receives ciphertext pieces only, and the journal keeps the
//     file key sealed to the user's own age identity;
//   - the client never holds storage credentials: every piece moves through
//     a short-lived presigned URL, over the system roots (never the CA
//     pinned for dozod);
//   - presigned URLs never appear in errors or logs;
//   - local files are created 0600 (secrets) or with the user's umask
//     (outputs), never through a symlink this process did not make.
package transfer
