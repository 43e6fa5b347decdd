package report

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// The record encodings compared by BenchmarkRecordEncoding: gzip at the
// level the record was gzipped with before (BestSpeed), zstd at the two
// levels considered with a 64 MiB window, and Write's encoder (its level,
// the window sized for the record). RECORD_BENCH_ALL=1
// adds gzip's default level, zstd's other windows and its best level, and
// the long-stream input (see benchRecords).
type recordCodec struct {
	name string
	enc  func(w io.Writer, size int) (io.WriteCloser, error)
	dec  func(io.Reader) (io.ReadCloser, error)
	all  bool // only with RECORD_BENCH_ALL=1
}

func gzipCodec(level int, all bool) recordCodec {
	name := fmt.Sprintf("gzip-%d", level)
	if level == gzip.DefaultCompression {
		name = "gzip-6" // what DefaultCompression is
	}
	return recordCodec{name: name, all: all,
		enc: func(w io.Writer, _ int) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, level) },
		dec: func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }}
}

func zstdCodec(level zstd.EncoderLevel, window int, all bool) recordCodec {
	return recordCodec{name: fmt.Sprintf("zstd-%s-%dM", level, window>>20), all: all,
		enc: func(w io.Writer, _ int) (io.WriteCloser, error) {
			return zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithWindowSize(window))
		},
		dec: zstdDecode}
}

func zstdDecode(r io.Reader) (io.ReadCloser, error) {
	zr, err := recordDecoder(r)
	if err != nil {
		return nil, err
	}
	return zr.IOReadCloser(), nil
}

// writeCodec is Write's encoder: recordLevel, with the window sized for
// the record (recordWindow).
var writeCodec = recordCodec{name: "zstd-write-" + recordLevel.String(),
	enc: func(w io.Writer, size int) (io.WriteCloser, error) { return recordEncoder(w, size) },
	dec: zstdDecode}

var recordCodecs = []recordCodec{
	gzipCodec(gzip.BestSpeed, false),
	gzipCodec(gzip.DefaultCompression, true),
	zstdCodec(zstd.SpeedDefault, 8<<20, true),
	zstdCodec(zstd.SpeedDefault, 64<<20, false),
	zstdCodec(zstd.SpeedBetterCompression, 8<<20, true),
	zstdCodec(zstd.SpeedBetterCompression, 32<<20, true),
	zstdCodec(zstd.SpeedBetterCompression, 64<<20, false),
	zstdCodec(zstd.SpeedBetterCompression, 256<<20, true),
	zstdCodec(zstd.SpeedBestCompression, 8<<20, true),
	zstdCodec(zstd.SpeedBestCompression, 64<<20, true),
	zstdCodec(zstd.SpeedBestCompression, 128<<20, true),
	writeCodec,
}

// benchRecord is one input of the benchmarks, its JSON made once.
type benchRecord struct {
	name string
	make func(testing.TB) Record
	all  bool // only with RECORD_BENCH_ALL=1
	once sync.Once
	rec  Record
	json []byte
}

func (r *benchRecord) get(b *testing.B) (Record, []byte) {
	r.once.Do(func() {
		r.rec = r.make(b)
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(r.rec); err != nil {
			b.Fatal(err)
		}
		r.json = buf.Bytes()
	})
	return r.rec, r.json
}

// fixtureRecord decodes a record a real run saved under validate/testdata.
func fixtureRecord(name string) func(testing.TB) Record {
	return func(tb testing.TB) Record {
		f, err := os.Open(filepath.Join("..", "validate", "testdata", name, RecordGzipFile))
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			tb.Fatal(err)
		}
		var rec Record
		if err := json.NewDecoder(zr).Decode(&rec); err != nil {
			tb.Fatal(err)
		}
		return rec
	}
}

// dirRecord loads the record of a saved report directory.
func dirRecord(dir string) func(testing.TB) Record {
	return func(tb testing.TB) Record {
		rec, err := Load(dir)
		if err != nil {
			tb.Fatal(err)
		}
		return rec
	}
}

// The inputs: a record whose 50 watch streams each received the same
// 20,000 put events of the committed log, made by 20,000 client
// operations (10 s of puts at 2000 requests/s, each stream about 4.6 MB
// of JSON); the two real records of validate/testdata (no watches); with
// RECORD_BENCH_ALL=1, 10 streams of 120,000 events each (60 s of puts at
// 2000/s, each stream about 30 MB, so a repeat is 30 MB back); and with
// RECORD_BENCH_DIR=DIR, the record of that saved report.
var benchRecords = func() []*benchRecord {
	rs := []*benchRecord{
		{name: "watch-50x20000", make: func(testing.TB) Record { return watchRecord(50, 20000, 1) }},
		{name: "watch-10x120000", make: func(testing.TB) Record { return watchRecord(10, 120000, 1) }, all: true},
		{name: "real-12clients-kill", make: fixtureRecord("v3.7.3-3members-12clients-kill")},
		{name: "real-24clients-etcd-high-kill", make: fixtureRecord("v3.7.3-3members-24clients-etcd-high-kill")},
	}
	if dir := os.Getenv("RECORD_BENCH_DIR"); dir != "" {
		rs = append(rs, &benchRecord{name: "dir-" + filepath.Base(dir), make: dirRecord(dir)})
	}
	return rs
}()

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkRecordEncoding measures, for each input, the JSON encoding and
// decoding of the record, and each codec's compression of that JSON
// (encode) and decompression (decode): ns/op is the time of one record,
// "bytes" the compressed size, "json-bytes" the JSON's.
func BenchmarkRecordEncoding(b *testing.B) {
	all := os.Getenv("RECORD_BENCH_ALL") != ""
	for _, in := range benchRecords {
		if in.all && !all {
			continue
		}
		b.Run(in.name, func(b *testing.B) {
			rec, js := in.get(b)
			b.Run("json/encode", func(b *testing.B) {
				b.SetBytes(int64(len(js)))
				for b.Loop() {
					if err := json.NewEncoder(io.Discard).Encode(rec); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(js)), "json-bytes")
			})
			b.Run("json/decode", func(b *testing.B) {
				b.SetBytes(int64(len(js)))
				for b.Loop() {
					var got Record
					if err := json.Unmarshal(js, &got); err != nil {
						b.Fatal(err)
					}
				}
			})
			for _, c := range recordCodecs {
				if c.all && !all {
					continue
				}
				var compressed bytes.Buffer
				b.Run(c.name+"/encode", func(b *testing.B) {
					b.SetBytes(int64(len(js)))
					for b.Loop() {
						compressed.Reset()
						zw, err := c.enc(&compressed, len(js))
						if err != nil {
							b.Fatal(err)
						}
						if _, err := zw.Write(js); err != nil {
							b.Fatal(err)
						}
						if err := zw.Close(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(compressed.Len()), "bytes")
					b.ReportMetric(float64(len(js))/float64(compressed.Len()), "ratio")
				})
				b.Run(c.name+"/decode", func(b *testing.B) {
					b.SetBytes(int64(len(js)))
					for b.Loop() {
						zr, err := c.dec(bytes.NewReader(compressed.Bytes()))
						if err != nil {
							b.Fatal(err)
						}
						var n countingWriter
						if _, err := io.Copy(&n, zr); err != nil {
							b.Fatal(err)
						}
						zr.Close()
						if n.n != int64(len(js)) {
							b.Fatalf("decoded %d bytes of %d", n.n, len(js))
						}
					}
				})
			}
		})
	}
}

// BenchmarkRecordWriteLoad measures what a run and a check pay: Write's
// record.json.zst (JSON, checksum and zstd in one stream to the file), and
// Load of it (decompression, JSON, the record's checks and the checksum).
// "bytes" is the size of record.json.zst.
func BenchmarkRecordWriteLoad(b *testing.B) {
	all := os.Getenv("RECORD_BENCH_ALL") != ""
	for _, in := range benchRecords {
		if in.all && !all {
			continue
		}
		b.Run(in.name, func(b *testing.B) {
			rec, js := in.get(b)
			dir := b.TempDir()
			b.Run("write", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(js)))
				for b.Loop() {
					if err := writeRecord(dir, rec); err != nil {
						b.Fatal(err)
					}
				}
				fi, err := os.Stat(filepath.Join(dir, RecordZstdFile))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(fi.Size()), "bytes")
			})
			b.Run("load", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(js)))
				for b.Loop() {
					if _, err := Load(dir); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
