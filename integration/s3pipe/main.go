// Command s3pipe is the benchmark's stand-in for a researcher's plain S3
// tool: a minio-go PutObject/GetObject of a file or of a stream, so that
// baselines run as separate processes whose time, CPU and peak RSS are
// measured exactly like the dozo CLI's (see integration/bench_test.go).
//
//	s3pipe put BUCKET KEY FILE   upload FILE (known size, multipart)
//	s3pipe put BUCKET KEY -      upload standard input (unknown size)
//	s3pipe get BUCKET KEY FILE   download to FILE ("-" for standard output)
//	s3pipe rm BUCKET KEY -       remove the object
//	s3pipe putdir BUCKET PREFIX DIR  upload each file of DIR, one PutObject after another
//	s3pipe getdir BUCKET PREFIX DIR  download each object under PREFIX/ into DIR, one after another
//	s3pipe rmdir BUCKET PREFIX -     remove every object under PREFIX/
//
// The endpoint and keys come from S3PIPE_ENDPOINT, S3PIPE_ACCESS_KEY and
// S3PIPE_SECRET_KEY (plain HTTP, as on the local stack).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// partSize is minio-go's part size for both baselines (the dozo benchmark
// of session 1 used the same).
const partSize = 64 << 20

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "s3pipe:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("usage: s3pipe put|get|rm BUCKET KEY FILE|-, or putdir|getdir|rmdir BUCKET PREFIX DIR|-")
	}
	op, bucket, key, file := args[0], args[1], args[2], args[3]
	mc, err := minio.New(os.Getenv("S3PIPE_ENDPOINT"), &minio.Options{
		Creds: credentials.NewStaticV4(os.Getenv("S3PIPE_ACCESS_KEY"), os.Getenv("S3PIPE_SECRET_KEY"), ""),
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch op {
	case "put":
		if file == "-" {
			_, err = mc.PutObject(ctx, bucket, key, os.Stdin, -1, minio.PutObjectOptions{PartSize: partSize})
			return err
		}
		_, err = mc.FPutObject(ctx, bucket, key, file, minio.PutObjectOptions{PartSize: partSize})
		return err
	case "get":
		obj, err := mc.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer obj.Close()
		out := os.Stdout
		if file != "-" {
			if out, err = os.Create(file); err != nil {
				return err
			}
		}
		if _, err := io.Copy(out, obj); err != nil {
			return err
		}
		return out.Close()
	case "rm":
		return mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	case "putdir":
		ents, err := os.ReadDir(file)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			if _, err := mc.FPutObject(ctx, bucket, key+"/"+e.Name(), filepath.Join(file, e.Name()), minio.PutObjectOptions{PartSize: partSize}); err != nil {
				return err
			}
		}
		return nil
	case "getdir", "rmdir":
		for oi := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: key + "/", Recursive: true}) {
			if oi.Err != nil {
				return oi.Err
			}
			if op == "rmdir" {
				if err := mc.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{}); err != nil {
					return err
				}
				continue
			}
			if err := mc.FGetObject(ctx, bucket, oi.Key, filepath.Join(file, path.Base(oi.Key)), minio.GetObjectOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown operation %q", op)
}
