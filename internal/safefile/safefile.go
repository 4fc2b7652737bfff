package safefile

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// bufferSize is the size of the write buffer placed in front of the temporary file.
const bufferSize = 64 << 10

// File is a file being written under a temporary name beside path; Commit puts it in place
// whole, Abort drops it. An existing file at path is unchanged until Commit succeeds.
type File struct {
	path, dir, tmp string
	perm           os.FileMode
	f              *os.File
	bw             *bufio.Writer
	done           bool
}

// Create starts writing the file that will replace path, with permissions perm.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, name := filepath.Split(path)
	if name == "" {
		return nil, fmt.Errorf("write %s: path names a directory", path)
	}
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &File{path: path, dir: dir, tmp: f.Name(), perm: perm, f: f, bw: bufio.NewWriterSize(f, bufferSize)}, nil
}

// Writer is where the file's content goes (buffered).
func (f *File) Writer() io.Writer { return f.bw }

// Commit flushes and syncs the file and renames it into place; on error the temporary file is
// removed. It may be called once.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("write %s: already committed or aborted", f.path)
	}
	err := f.commit()
	if err != nil {
		f.Abort()
	}
	f.done = true
	return err
}

func (f *File) commit() error {
	if err := f.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", f.path, err)
	}
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", f.path, err)
	}
	if err := os.Chmod(f.tmp, f.perm); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Abort removes the temporary file. Safe after Commit (it does nothing then) and many times.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	_ = f.f.Close()
	_ = os.Remove(f.tmp)
}

// Write atomically replaces the file at path with what write produces, with permissions perm.
// The data is visible under path only after write returned nil and the data reached the disk.
// On any error (including a panic in write) the temporary file is removed and an existing file at
// path is unchanged.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort() // on errors and panics alike: the temp file must never be left behind
	if err := write(f.Writer()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteJSON atomically writes v as indented JSON followed by a newline, with permissions 0644.
// HTML characters are not escaped, so the file reads as the data was given.
func WriteJSON(path string, v any) error {
	return Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v) // Encode ends with a newline.
	})
}

// syncDir fsyncs a directory so a rename inside it is durable. File systems and platforms that
// cannot sync a directory are not an error (restic's local backend does the same).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, errors.ErrUnsupported) {
		err = nil
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
