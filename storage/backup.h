#pragma once
// BackupDatabase: a consistent copy of a live gatewatch database (`gatewatch backup`), made
// with SQLite's online backup API while the daemon keeps writing.
//
// Consistency: the copy is one snapshot of the source. A read transaction on the source is
// held for the whole copy, so every step reads the same snapshot and the writer's commits
// meanwhile never restart the copy. In WAL mode (every gatewatch database) that snapshot
// blocks no writer; the WAL only keeps growing until the copy is done, because checkpoints
// cannot pass the snapshot. The copy runs in steps of `pages_per_step` pages, and waits
// caused by locks (SQLITE_BUSY / SQLITE_LOCKED, e.g. during WAL recovery) are retried until
// they add up to `max_lock_wait`.
//
// Never partial: the pages go to `dest`.tmp (a name this function owns: a leftover of an
// interrupted backup is replaced), which is switched to journal_mode DELETE (a single file;
// gatewatch turns WAL back on when it opens it), checked with PRAGMA integrity_check,
// fsynced, then renamed over `dest`, and the directory is fsynced. On any error the .tmp
// file is removed and `dest` is untouched. Stale `dest`-wal, -shm and -journal files are
// removed before the rename: SQLite would otherwise apply them to the new file.
//
// Threads: any thread; opens its own connections and closes them before returning. Blocks
// for the copy (disk speed) plus at most max_lock_wait.

#include <chrono>
#include <cstdint>
#include <string>

#include "probes/result.h"

namespace gatewatch::storage {

struct BackupOptions {
  bool overwrite = false;     // replace an existing dest (otherwise an error)
  int pages_per_step = 1024;  // per sqlite3_backup_step call (4 MiB with 4 KiB pages), > 0
  std::chrono::milliseconds max_lock_wait{30'000};  // total wait for locks before failing
};

// What was copied; sizes are those of `dest` after the rename.
struct BackupReport {
  int64_t result_rows = 0;  // rows of the results table in the copy
  int schema_version = 0;   // PRAGMA user_version of the copy
  int64_t pages = 0;
  int64_t bytes = 0;                       // size of the dest file
  int steps = 0;                           // sqlite3_backup_step calls, retries included
  std::chrono::milliseconds lock_wait{0};  // time spent waiting for locks
};

// Copies the database at `source` to `dest`. Errors (each says which file and what to do):
// no source database, a source that is not a gatewatch database (no results table), dest
// exists and !overwrite, dest is the source itself or a directory, the directory of dest is
// missing or not writable, locks held longer than max_lock_wait, an I/O error, or a copy
// that fails its integrity check.
Result<BackupReport> BackupDatabase(const std::string& source, const std::string& dest,
                                    const BackupOptions& options = {});

}  // namespace gatewatch::storage
