package input

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/trialcat/trialcat/internal/record"
)

// FormatZip is a zip of one JSON file per record (the registry site's download of studies), read
// entry by entry from the archive, never unpacked to disk.
const FormatZip Format = "zip"

// zipMagic starts every zip archive (a local file header).
const zipMagic = "PK\x03\x04"

// maxZipEntry bounds one entry's uncompressed size: a study is 10-20 KB, and a bigger entry is a
// compression bomb or not a study.
const maxZipEntry = 64 << 20

// isZip reports whether f starts like a zip archive (f is left at its start).
func isZip(f *os.File) bool {
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	_, _ = f.Seek(0, io.SeekStart)
	return n == 4 && string(head[:]) == zipMagic
}

// zipSource yields the JSON entries of a zip archive in the archive's order; folders and files
// not named *.json are skipped.
type zipSource struct {
	loc    locator
	fields []string
	files  []*zip.File
	i      int
}

func newZipSource(f *os.File, loc locator, fields []string) (*zipSource, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		return nil, loc.errorf("check that it is a whole zip archive (a download cut short is not)", "cannot read the zip archive: %v", err)
	}
	s := &zipSource{loc: loc, fields: fields}
	for _, zf := range zr.File {
		if zf.FileInfo().IsDir() || !strings.EqualFold(path.Ext(zf.Name), ".json") {
			continue
		}
		s.files = append(s.files, zf)
	}
	return s, nil
}

func (s *zipSource) next() (raw, error) {
	if s.i >= len(s.files) {
		return raw{}, io.EOF
	}
	zf := s.files[s.i]
	s.i++
	where := fmt.Sprintf("entry %s", zf.Name)
	if zf.UncompressedSize64 > maxZipEntry {
		return raw{}, s.loc.errorf("a record's file is at most 64 MB", "%s is %d bytes uncompressed", where, zf.UncompressedSize64)
	}
	rc, err := zf.Open()
	if err != nil {
		return raw{}, s.loc.errorf("", "%s: %v", where, err)
	}
	data, err := io.ReadAll(io.LimitReader(rc, maxZipEntry+1))
	rc.Close()
	if err != nil {
		return raw{}, s.loc.errorf("check that the archive is whole", "%s: %v", where, err)
	}
	if len(data) > maxZipEntry {
		return raw{}, s.loc.errorf("a record's file is at most 64 MB", "%s is over 64 MB uncompressed", where)
	}
	data = bytes.TrimPrefix(data, []byte(bomUTF8))
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return raw{}, s.loc.errorf("each .json file of the archive must hold one JSON object", "%s is not JSON: %v", where, err)
	}
	m, err := record.Decode(b.Bytes())
	if err != nil {
		return raw{}, s.loc.errorf("each .json file of the archive must hold one JSON object", "%s: %v", where, err)
	}
	id := ""
	for _, f := range s.fields {
		if id = record.IDOf(m, f); id != "" {
			break
		}
	}
	return raw{data: b.Bytes(), id: id, off: -1, line: s.i}, nil
}
