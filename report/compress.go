package report

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SizeBudget is what a report of a 10 s, 3-member run should stay under,
// member data dirs (compressed) included.
const SizeBudget = 20 << 20

// LogCompressThreshold: a member log larger than this is gzipped.
const LogCompressThreshold = 1 << 20

// CompressMembers replaces each member's data dir, <dir>/member-N/data, with
// member-N/data.tar.gz (unpack with `tar xzf member-N/data.tar.gz -C
// member-N`), and gzips a member log larger than LogCompressThreshold into
// member-N/etcd.log.gz. An original is removed only once its archive is
// written and closed.
func CompressMembers(dir string) error {
	members, err := filepath.Glob(filepath.Join(dir, "member-*"))
	if err != nil {
		return err
	}
	for _, m := range members {
		if fi, err := os.Stat(m); err != nil || !fi.IsDir() {
			continue
		}
		data := filepath.Join(m, "data")
		if fi, err := os.Stat(data); err == nil && fi.IsDir() {
			if err := tarGz(data, filepath.Join(m, "data.tar.gz")); err != nil {
				return fmt.Errorf("report: compressing %s: %w", data, err)
			}
			if err := os.RemoveAll(data); err != nil {
				return fmt.Errorf("report: %w", err)
			}
		}
		log := filepath.Join(m, "etcd.log")
		if fi, err := os.Stat(log); err == nil && fi.Size() > LogCompressThreshold {
			if err := gzipFile(log, log+".gz"); err != nil {
				return fmt.Errorf("report: compressing %s: %w", log, err)
			}
			if err := os.Remove(log); err != nil {
				return fmt.Errorf("report: %w", err)
			}
		}
	}
	return nil
}

// tarGz writes src (a directory) into the archive out, with names relative
// to src's parent, so the archive unpacks to a directory named like src.
func tarGz(src, out string) (err error) {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	parent := filepath.Dir(src)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil // sockets, locks: nothing to keep
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(parent, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.CopyN(tw, in, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func gzipFile(src, out string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if _, err = io.Copy(zw, in); err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// DirSize is the bytes of every file under dir.
func DirSize(dir string) int64 {
	_, total := listFiles(dir)
	return total
}
