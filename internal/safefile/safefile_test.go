package safefile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// entries lists the names in dir, so tests can check that no temporary file was left behind.
func entries(tb testing.TB, dir string) []string {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWrite(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name     string
		existing string // "" = no existing file
		write    func(w io.Writer) error
		panics   bool
		wantErr  error
		want     string // file content afterwards
	}{
		{name: "new file", write: writeString("hello\n"), want: "hello\n"},
		{name: "replaces existing", existing: "old", write: writeString("new"), want: "new"},
		{name: "empty file", existing: "old", write: writeString(""), want: ""},
		{name: "large file", write: writeString(string(make([]byte, 3*bufferSize+7))), want: string(make([]byte, 3*bufferSize+7))},
		{name: "error keeps existing", existing: "old", write: func(w io.Writer) error {
			_, _ = io.WriteString(w, "partial")
			return errBoom
		}, wantErr: errBoom, want: "old"},
		{name: "panic keeps existing", existing: "old", write: func(w io.Writer) error {
			_, _ = io.WriteString(w, "partial")
			panic("boom")
		}, panics: true, want: "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.csv")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil && !tt.panics {
						t.Fatalf("unexpected panic: %v", r)
					}
				}()
				err = Write(path, 0o644, tt.write)
			}()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write error = %v, want %v", err, tt.wantErr)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if string(got) != tt.want {
				t.Errorf("content = %.40q, want %.40q", got, tt.want)
			}
			if names := entries(t, dir); len(names) != 1 || names[0] != "out.csv" {
				t.Errorf("directory holds %q, want only out.csv (no temp files)", names)
			}
		})
	}
}

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func TestWritePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	tests := []struct {
		name string
		perm os.FileMode
	}{
		{"0644", 0o644},
		{"0600", 0o600},
		{"0640", 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := Write(path, tt.perm, writeString("x")); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.perm {
				t.Errorf("mode = %v, want %v", got, tt.perm)
			}
		})
	}
}

func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "f")
	if err := Write(path, 0o644, writeString("x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Write into a missing directory: error = %v, want os.ErrNotExist", err)
	}
}

func TestWriteRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := Write("rel.txt", 0o644, writeString("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile("rel.txt"); err != nil || string(got) != "x" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
}

func TestWriteJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "batch_1.json")
	v := map[string]any{"ids": []string{"NCT1", "a<b>&c"}}
	if err := WriteJSON(path, v); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"ids\": [\n    \"NCT1\",\n    \"a<b>&c\"\n  ]\n}\n"
	if string(got) != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("mode = %v, want 0644", fi.Mode().Perm())
		}
	}
}

func TestWriteJSONUnencodable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	if err := WriteJSON(path, map[string]any{"f": func() {}}); err == nil {
		t.Fatal("WriteJSON of a func: want an error")
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %q, want nothing", names)
	}
}
