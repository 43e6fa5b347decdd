package report

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

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

// sizedEncoder makes the zstd encoder once it knows the window the
// record needs: it holds what it is given until that reaches RecordWindow
// (the window then is RecordWindow) or until Close (the window then is the
// one that holds it all), so a record written in parts gets the window it
// would get written whole.
type sizedEncoder struct {
	w   io.Writer
	zw  *zstd.Encoder
	buf []byte
}

func (e *sizedEncoder) Write(p []byte) (int, error) {
	if e.zw != nil {
		return e.zw.Write(p)
	}
	e.buf = append(e.buf, p...)
	if len(e.buf) < RecordWindow {
		return len(p), nil
	}
	if err := e.start(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// start makes the encoder for what is held and writes it.
func (e *sizedEncoder) start() error {
	zw, err := recordEncoder(e.w, len(e.buf))
	if err != nil {
		return err
	}
	e.zw = zw
	_, err = zw.Write(e.buf)
	e.buf = nil
	return err
}

// Close finishes the frame (an empty one when nothing was written).
func (e *sizedEncoder) Close() error {
	if e.zw == nil {
		if err := e.start(); err != nil {
			return err
		}
	}
	return e.zw.Close()
}

func recordDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderMaxWindow(MaxRecordWindow), zstd.WithDecoderMaxMemory(uint64(MaxRecordJSON)))
}

// writeRecord writes rec as dir/record.json.zst, and the JSON's SHA-256 to
// dir/record.json.sha256. The JSON streams through the hash and the
// encoder into the file: neither the JSON (made a field or an array
// element at a time, see encodeRecord) nor the compressed record is held
// whole; the encoder holds at most RecordWindow before it starts. The
// file appears under its name only once it is complete, and any other
// form of the record in dir is removed, so that Load cannot read a stale
// one.
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
// JSON's SHA-256 in hex. The JSON is json.Marshal's, with a newline, but
// made field by field and, for the long arrays (streamedFields), element
// by element (encodeFields), so that it is never held whole.
func encodeRecord(w io.Writer, rec Record) (string, error) {
	zw := &sizedEncoder{w: w}
	h := sha256.New()
	if err := encodeFields(io.MultiWriter(h, zw), &rec); err != nil {
		zw.Close()
		return "", fmt.Errorf("report: encoding %s: %w", RecordFile, err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("report: writing %s: %w", RecordZstdFile, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordField is one of Record's JSON fields, in the order json.Marshal
// writes them.
type recordField struct {
	name      string
	omitEmpty bool
	v         reflect.Value
}

// recordFieldList lists rec's fields as json.Marshal writes them: in
// order, those of the embedded validate.Input in its place.
func recordFieldList(rec *Record) []recordField {
	var out []recordField
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out = append(out, recordField{name: name, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty"), v: v.Field(i)})
		}
	}
	walk(reflect.ValueOf(rec).Elem())
	return out
}

// recordFields maps each JSON name of Record's fields to the field in rec.
func recordFields(rec *Record) map[string]reflect.Value {
	out := map[string]reflect.Value{}
	for _, f := range recordFieldList(rec) {
		out[f.name] = f.v
	}
	return out
}

// isEmpty is encoding/json's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// encodeFields writes rec as json.Marshal does, and a newline.
func encodeFields(w io.Writer, rec *Record) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	sep := byte('{')
	for _, f := range recordFieldList(rec) {
		if f.omitEmpty && isEmpty(f.v) {
			continue
		}
		bw.WriteByte(sep)
		sep = ','
		name, _ := json.Marshal(f.name)
		bw.Write(name)
		bw.WriteByte(':')
		if !streamedFields[f.name] || f.v.IsNil() {
			b, err := json.Marshal(f.v.Interface())
			if err != nil {
				return err
			}
			bw.Write(b)
			continue
		}
		bw.WriteByte('[')
		for i := range f.v.Len() {
			if i > 0 {
				bw.WriteByte(',')
			}
			b, err := json.Marshal(f.v.Index(i).Interface())
			if err != nil {
				return err
			}
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		bw.WriteByte(']')
	}
	if sep == '{' {
		bw.WriteByte('{')
	}
	bw.WriteString("}\n")
	return bw.Flush()
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

// Decoding a record streams: the decompressed JSON goes through the
// SHA-256 and into a json.Decoder that reads the top-level object field by
// field, and the two long arrays (clients and watches) element by element,
// so that neither the JSON nor json.Decoder's copy of a whole value is ever
// held: only the record itself and one element's JSON. (Reading the 60 s
// high-rate run's 359 MB of JSON whole took 1.8 GB besides the record.)

// streamedFields are the record's arrays decoded one element at a time.
var streamedFields = map[string]bool{"clients": true, "watches": true}

// readErrors is the decompressed record as json reads it: it remembers
// the first error of the decompressor (a *corruptError, worded like
// decompress's), counts the bytes against MaxRecordJSON and hashes them.
type readErrors struct {
	r    io.Reader
	name string
	n    int64
	hash hash.Hash
	err  error
}

func (r *readErrors) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	r.hash.Write(p[:n])
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(err, io.ErrUnexpectedEOF):
		r.err = &corruptError{r.name, fmt.Errorf("%w (the file is cut short)", err)}
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		r.err = &corruptError{r.name, fmt.Errorf("%w: the frame asks for a window over the %d MiB Load allows", err, MaxRecordWindow>>20)}
	default:
		r.err = &corruptError{r.name, err}
	}
	if r.err == nil && r.n > MaxRecordJSON {
		r.err = &corruptError{r.name, fmt.Errorf("its JSON is over %d GiB, more than a record may be", MaxRecordJSON>>30)}
	}
	if r.err != nil {
		return n, r.err
	}
	return n, err
}

// openRecord opens the first form of the record dir holds (in readRecord's
// order) as a reader of its JSON. close releases it.
func openRecord(dir string) (r io.Reader, name string, closeFn func(), err error) {
	for _, name := range []string{RecordFile, RecordZstdFile, RecordGzipFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, name, nil, err
		}
		switch filepath.Ext(name) {
		case ".zst":
			zr, err := recordDecoder(f)
			if err != nil {
				f.Close()
				return nil, name, nil, &corruptError{name, err}
			}
			return zr, name, func() { zr.Close(); f.Close() }, nil
		case ".gz":
			zr, err := gzip.NewReader(f)
			if err != nil {
				f.Close()
				return nil, name, nil, &corruptError{name, err}
			}
			return zr, name, func() { zr.Close(); f.Close() }, nil
		}
		return f, name, func() { f.Close() }, nil
	}
	return nil, RecordFile, nil, fs.ErrNotExist
}

// headerError is a record of another format or version.
type headerError struct{ msg string }

func (e *headerError) Error() string { return e.msg }

// checkHeader rejects a record of another format or version.
func checkHeader(dir, name, format string, version int) error {
	if format != Format {
		return &headerError{fmt.Sprintf("report %s is corrupt: %s has format %q, not %q", dir, name, format, Format)}
	}
	if version != Version {
		return &headerError{fmt.Sprintf("report %s: %s is version %d; this etcd-robustness reads version %d only", dir, name, version, Version)}
	}
	return nil
}

// decodeRecord reads dir's record into rec, streaming (see above), and
// returns the form it read and its JSON's SHA-256 in hex. Its errors are
// whole lines, as Load returns them, but for fs.ErrNotExist: a record of
// another format or version is named as such first, then a record that
// does not decompress, then JSON that is not a record of this version
// (an unknown field, a wrong type, JSON cut short).
func decodeRecord(dir string, rec *Record) (name, digest string, err error) {
	r, name, closeFn, err := openRecord(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return name, "", err
	}
	var cerr *corruptError
	if errors.As(err, &cerr) {
		return name, "", fmt.Errorf("report %s is corrupt: %w", dir, err)
	}
	if err != nil {
		return name, "", fmt.Errorf("report: %w", err)
	}
	defer closeFn()
	in := &readErrors{r: r, name: name, hash: sha256.New()}
	headChecked, err := decodeFields(dir, name, json.NewDecoder(in), rec)
	if err == nil {
		// The rest (a newline) belongs to the JSON the checksum covers.
		_, err = io.Copy(io.Discard, in)
	}
	if err != nil {
		if he := (*headerError)(nil); errors.As(err, &he) {
			return name, "", err
		}
		if !headChecked {
			// Fields came before the header, or the JSON broke before it:
			// read the header the slow way, so that another version is
			// named as such rather than as a field this one does not know.
			if herr := slowHeader(dir, name); herr != nil {
				return name, "", herr
			}
		}
		// A decompression error explains a JSON error that follows from
		// it: read on to find one.
		if in.err == nil {
			io.Copy(io.Discard, in)
		}
		if in.err != nil {
			return name, "", fmt.Errorf("report %s is corrupt: %w", dir, in.err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("unexpected end of JSON input")
		}
		return name, "", fmt.Errorf("report %s is corrupt: %s: %w", dir, name, err)
	}
	return name, hex.EncodeToString(in.hash.Sum(nil)), nil
}

// slowHeader reads the record whole to check its header, as Load did
// before it streamed: only when the stream broke before the header.
func slowHeader(dir, name string) error {
	b, _, err := readRecord(dir)
	if err != nil {
		return nil
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil
	}
	return checkHeader(dir, name, head.Format, head.Version)
}

// decodeFields decodes the record's top-level object from dec, field by
// field, rejecting fields the record does not have. The header (format
// and version, which Write puts first) is checked as soon as both are
// read, before any other field; headChecked says whether it was.
func decodeFields(dir, name string, dec *json.Decoder, rec *Record) (headChecked bool, err error) {
	dec.DisallowUnknownFields()
	fields := recordFields(rec)
	if err := expectDelim(dec, '{'); err != nil {
		return false, err
	}
	seen := map[string]bool{}
	check := func() error {
		headChecked = true
		return checkHeader(dir, name, rec.Format, rec.Version)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return headChecked, err
		}
		key, _ := tok.(string)
		if !headChecked && key != "format" && key != "version" && seen["format"] && seen["version"] {
			if err := check(); err != nil {
				return headChecked, err
			}
		}
		field, ok := fields[key]
		if !ok {
			for k, f := range fields { // encoding/json matches names regardless of case
				if strings.EqualFold(k, key) {
					key, field, ok = k, f, true
					break
				}
			}
		}
		if !ok {
			return headChecked, fmt.Errorf("json: unknown field %q", key)
		}
		seen[key] = true
		if streamedFields[key] {
			err = decodeArray(dec, field)
		} else {
			err = dec.Decode(field.Addr().Interface())
		}
		if err != nil {
			return headChecked, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return headChecked, err
	}
	if !headChecked {
		if err := check(); err != nil {
			return headChecked, err
		}
	}
	return headChecked, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("json: %v where %v was expected", tok, d)
	}
	return nil
}

// decodeArray decodes a JSON array (or null) into the slice field one
// element at a time. Each element's slices of its own (a watch's
// responses, a client's operations) are copied to their length: json
// grows them by doubling, which would otherwise keep up to twice the room
// they need.
func decodeArray(dec *json.Decoder, field reflect.Value) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		field.SetZero()
		return nil
	}
	if tok != json.Delim('[') {
		return fmt.Errorf("json: cannot unmarshal %v into a list", tok)
	}
	field.SetLen(0)
	for dec.More() {
		elem := reflect.New(field.Type().Elem())
		if err := dec.Decode(elem.Interface()); err != nil {
			return err
		}
		fitSlices(elem.Elem())
		// The keys and values etcd returned recur in every stream and
		// read: one copy of each, as in the run that recorded them.
		if in, ok := elem.Interface().(interface{ InternStrings() }); ok {
			in.InternStrings()
		}
		field.Set(reflect.Append(field, elem.Elem()))
	}
	_, err = dec.Token() // ']'
	if err != nil {
		return err
	}
	if field.IsNil() {
		field.Set(reflect.MakeSlice(field.Type(), 0, 0)) // [] as json.Unmarshal reads it
	}
	field.Set(field.Slice3(0, field.Len(), field.Len()))
	return nil
}

// fitSlices copies each slice field of the struct v whose capacity is
// well over its length to one of its length.
func fitSlices(v reflect.Value) {
	if v.Kind() != reflect.Struct {
		return
	}
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Slice || !f.CanSet() || f.Cap() <= f.Len()+f.Len()/8 {
			continue
		}
		fit := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
		reflect.Copy(fit, f)
		f.Set(fit)
	}
}
