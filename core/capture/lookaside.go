package capture

import (
	"fmt"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// DisableLookaside turns SQLite's lookaside allocator off for the whole
// process. Lookaside is a per-connection arena (about 48 KB) that speeds up
// the small allocations of busy connections; a daemon's connections are
// mostly idle readers, one or two per database, so the arena is memory
// held for nothing: 48 MB with 1,000 databases. SQLite offers the switch
// per connection (SQLITE_DBCONFIG_LOOKASIDE) too, but modernc.org/sqlite
// exposes only the process-wide sqlite3_config, which must run before
// SQLite initialises, that is before the process opens its first
// database. A daemon calls this first thing; a later call fails and
// changes nothing.
func DisableLookaside() error {
	tls := libc.NewTLS()
	defer tls.Close()
	// Two C ints, slot size and slot count, both 0: no lookaside.
	args := libc.Xmalloc(tls, types.Size_t(2*unsafe.Sizeof(uint64(0))))
	if args == 0 {
		return fmt.Errorf("disable SQLite lookaside: out of memory")
	}
	defer libc.Xfree(tls, args)
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_LOOKASIDE, libc.VaList(args, int32(0), int32(0))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("disable SQLite lookaside: sqlite3_config returned %d (a database was opened before)", rc)
	}
	return nil
}
