// Package releases is where etcd releases meet: what a data dir says about
// the releases that wrote it (its storage and cluster versions, read from
// the backend without writing to it), a hash of every file in it (to show
// that a refused start or a refused migration left it unchanged), and the
// newest patch release of each line the harness builds.
//
// Its end-to-end test, TestStorageVersionGuard, starts older binaries on
// data written by newer ones and records what each release does (make
// test-storage-version-guard).
package releases
