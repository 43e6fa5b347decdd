package report

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// The forms a run record is kept in. Write keeps it as RecordZstdFile;
// Load reads any of them (see readRecord for the order).
const (
	// RecordZstdFile is record.json compressed with zstd, as Write keeps
	// every record. Read it with `zstd -dc record.json.zst`.
	RecordZstdFile = RecordFile + ".zst"
	// RecordGzipFile is record.json gzipped: how a record over 4 MiB was
	// kept before records were kept with zstd.
	RecordGzipFile = RecordFile + ".gz"
)

// The zstd encoder of the run record. A watch stream repeats the events
// that the other streams and the committed log hold, a whole stream's
// length (megabytes) before; gzip's 32 KiB window cannot reach them. The
// settings were chosen by measurement (BenchmarkRecordEncoding; README,
// "The report directory"). This zstd has no long-distance matcher, so at
// its default and "better" levels a window past 8 MiB finds little more;
// its best level does use a long window.
const (
	// RecordWindow is the largest zstd window Write encodes with: at the
	// best level it compresses the benchmark's watch records 6 to 10%
	// smaller than an 8 MiB window; 128 MiB gave at most 1% more, for
	// 145 MB more memory. A
	// record smaller than that gets the power of two that holds it all
	// (at least 1 MiB), which compresses it the same and spares the
	// encoder and every decoder a window it would not fill.
	RecordWindow = 64 << 20
	// recordLevel is the zstd level Write encodes with. On the benchmark's
	// watch records (50 streams of 20,000 events, 10 of 120,000) it gives
	// 14.1 and 21.3 MB, against 16.1 and 24.9 MB at SpeedBetterCompression,
	// 19.7 and 28.0 MB at SpeedDefault, and 27.3 and 36.6 MB with gzip at
	// BestSpeed (before). It encodes the slowest, about 35 MB of JSON a
	// second here (half SpeedBetterCompression's speed), which a report,
	// written only for a failing or kept run, can pay; it decodes as fast
	// as the others.
	recordLevel = zstd.SpeedBestCompression
	// MaxRecordWindow is the largest window Load decodes with, so that a
	// damaged frame header cannot make it allocate gigabytes. It leaves
	// room for a record recompressed by hand (`zstd --long=28`).
	MaxRecordWindow = 256 << 20
	// MaxRecordJSON is the largest record (its JSON) Load reads: past it,
	// the file is taken to be corrupt rather than read into memory.
	MaxRecordJSON int64 = 8 << 30
)

// recordEncoder is Write's zstd encoder for a record of size bytes of
// JSON.
func recordEncoder(w io.Writer, size int) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(recordLevel), zstd.WithWindowSize(recordWindow(size)))
}

// recordWindow is the window for size bytes: the smallest power of two
// from 1 MiB to RecordWindow that holds them.
func recordWindow(size int) int {
	w := 1 << 20
	for w < size && w < RecordWindow {
		w <<= 1
	}
	return w
}

// sizedEncoder makes the zstd encoder at the first Write, sized for what
// it is given: json.Encoder writes a value's whole JSON in one Write.
// Should it write in parts, the record would still be whole, only
// compressed with a smaller window (TestRecordWindow would catch that).
type sizedEncoder struct {
	w  io.Writer
	zw *zstd.Encoder
}

func (e *sizedEncoder) Write(p []byte) (int, error) {
	if e.zw == nil {
		zw, err := recordEncoder(e.w, len(p))
		if err != nil {
			return 0, err
		}
		e.zw = zw
	}
	return e.zw.Write(p)
}

// Close finishes the frame (an empty one when nothing was written).
func (e *sizedEncoder) Close() error {
	if e.zw == nil {
		zw, err := recordEncoder(e.w, 0)
		if err != nil {
			return err
		}
		e.zw = zw
	}
	return e.zw.Close()
}

func recordDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(MaxRecordWindow), zstd.WithDecoderMaxMemory(uint64(MaxRecordJSON)))
}

// writeRecord writes rec as dir/record.json.zst, and the JSON's SHA-256 to
// dir/record.json.sha256. The JSON streams through the hash and the
// encoder into the file: the compressed record is never held in memory.
// (encoding/json builds the whole JSON in its buffer before writing it, so
// that is held once.) The file appears under its name only once it is
// complete, and any other form of the record in dir is removed, so that
// Load cannot read a stale one.
func writeRecord(dir string, rec Record) (err error) {
	path := filepath.Join(dir, RecordZstdFile)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	digest, err := encodeRecord(f, rec)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, stale := range []string{RecordFile, RecordGzipFile} {
		if err := os.Remove(filepath.Join(dir, stale)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("report: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ChecksumFile), []byte(digest+"  "+RecordFile+"\n"), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// encodeRecord writes rec's JSON, zstd-compressed, to w and returns the
// JSON's SHA-256 in hex. The JSON is json.Marshal's, with a newline.
func encodeRecord(w io.Writer, rec Record) (string, error) {
	zw := &sizedEncoder{w: w}
	h := sha256.New()
	if err := json.NewEncoder(io.MultiWriter(h, zw)).Encode(rec); err != nil {
		zw.Close()
		return "", fmt.Errorf("report: encoding %s: %w", RecordFile, err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("report: writing %s: %w", RecordZstdFile, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// corruptError is a record file that could not be decompressed: cut
// short, garbled, or not of its format.
type corruptError struct {
	name string
	err  error
}

func (e *corruptError) Error() string { return e.name + ": " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// readRecord reads the record's JSON from the first form dir holds, in
// this order: record.json (what a person gets by decompressing one by
// hand, so it wins), record.json.zst (what Write keeps), record.json.gz
// (what Write kept for a large record before). name is the file read. A
// file that cannot be decompressed gets a *corruptError; none of the
// three, an error that is fs.ErrNotExist.
func readRecord(dir string) (b []byte, name string, err error) {
	for _, name := range []string{RecordFile, RecordZstdFile, RecordGzipFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, name, err
		}
		b, err := decompress(f, name)
		f.Close()
		return b, name, err
	}
	return nil, RecordFile, fs.ErrNotExist
}

// decompress reads the JSON out of the record file f named name, whole,
// or fails: it never returns part of a record.
func decompress(f *os.File, name string) ([]byte, error) {
	var r io.Reader = f
	switch filepath.Ext(name) {
	case ".zst":
		zr, err := recordDecoder(f)
		if err != nil {
			return nil, &corruptError{name, err}
		}
		defer zr.Close()
		r = zr
	case ".gz":
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, &corruptError{name, err}
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxRecordJSON+1))
	if err != nil {
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			err = fmt.Errorf("%w (the file is cut short)", err)
		case errors.Is(err, zstd.ErrWindowSizeExceeded):
			err = fmt.Errorf("%w: the frame asks for a window over the %d MiB Load allows", err, MaxRecordWindow>>20)
		}
		return nil, &corruptError{name, err}
	}
	if int64(len(b)) > MaxRecordJSON {
		return nil, &corruptError{name, fmt.Errorf("its JSON is over %d GiB, more than a record may be", MaxRecordJSON>>30)}
	}
	return b, nil
}
