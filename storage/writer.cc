#include "storage/writer.h"

#include <algorithm>

#include "probes/log.h"

namespace gatewatch::storage {

namespace {
using SteadyClock = std::chrono::steady_clock;
}  // namespace

Writer::Writer(WriterOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

Result<std::unique_ptr<Writer>> Writer::Start(WriterOptions options, const Clock& clock) {
  if (options.batch_rows == 0 || options.queue_capacity == 0 || options.max_attempts <= 0 ||
      options.prune_max_rows <= 0) {
    return Error(
        "storage: writer options: batch_rows, queue_capacity, max_attempts and "
        "prune_max_rows must be positive");
  }
  options.open.read_only = false;
  std::unique_ptr<Writer> writer(new Writer(std::move(options), clock));
  // Shared: the thread may still be inside set_value() when Start() returns.
  auto opened = std::make_shared<std::promise<Result<void>>>();
  auto opened_future = opened->get_future();
  Writer* w = writer.get();
  writer->thread_ = std::jthread([w, opened](std::stop_token stop) { w->Run(stop, *opened); });
  Result<void> r = opened_future.get();
  if (!r) {
    writer->thread_.join();  // Run returned after reporting the error
    writer->stopped_ = true;
    return Error(r.error());
  }
  return writer;
}

Writer::~Writer() { Stop(); }

bool Writer::Enqueue(probes::ProbeResult result) {
  {
    std::lock_guard lock(mu_);
    if (!stopped_ && queue_.size() + in_flight_ < options_.queue_capacity) {
      queue_.push_back(Pending{SteadyClock::now(), std::move(result)});
      ++accepted_seq_;
      if (queue_.size() == options_.batch_rows) work_cv_.notify_all();
      // The first result of an empty queue starts the flush_interval clock: wake the thread
      // so it waits with that deadline.
      if (queue_.size() == 1) work_cv_.notify_all();
      return true;
    }
  }
  rows_rejected_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool Writer::HasRoom(size_t rows) const {
  std::lock_guard lock(mu_);
  return !stopped_ && queue_.size() + in_flight_ + rows <= options_.queue_capacity;
}

bool Writer::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const uint64_t target = accepted_seq_;
  flush_target_ = std::max(flush_target_, target);
  work_cv_.notify_all();
  return done_cv_.wait_for(lock, timeout, [&] { return done_seq_ >= target; });
}

void Writer::Stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  if (thread_.joinable()) {
    thread_.request_stop();  // wakes work_cv_ waits through the stop token
    thread_.join();
  }
}

WriterStats Writer::Stats() const {
  WriterStats s;
  {
    std::lock_guard lock(mu_);
    s.rows_accepted = accepted_seq_;
    s.queue_depth = queue_.size() + in_flight_;
  }
  s.rows_rejected = rows_rejected_.load();
  s.rows_written = rows_written_.load();
  s.rows_lost = rows_lost_.load();
  s.batches = batches_.load();
  s.write_errors = write_errors_.load();
  s.last_batch_latency = std::chrono::microseconds(last_batch_latency_us_.load());
  s.prune_steps = prune_steps_.load();
  s.rows_pruned = rows_pruned_.load();
  s.prune_errors = prune_errors_.load();
  return s;
}

WriteActivity Writer::Activity() const {
  WriteActivity a;
  // In this order: EndWrite() stores the outcome before clearing writing_since, so an
  // attempt that just ended is never seen as neither running nor failed.
  const int64_t lock_wait = lock_wait_since_ns_.load();
  const int64_t since = writing_since_ns_.load();
  a.last_commit_failed = last_commit_failed_.load();
  const auto to_time = [](int64_t ns) {
    return SteadyTime(
        std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(ns)));
  };
  if (since != kNotWriting) a.writing_since = to_time(since);
  if (lock_wait != kNotWriting) a.lock_wait_since = to_time(lock_wait);
  return a;
}

int64_t Writer::SteadyNowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Steady().time_since_epoch())
      .count();
}

void Writer::BeginWrite() { writing_since_ns_.store(SteadyNowNs()); }

void Writer::EndWrite(std::optional<bool> commit_failed) {
  if (commit_failed) last_commit_failed_.store(*commit_failed);
  lock_wait_since_ns_.store(kNotWriting);
  writing_since_ns_.store(kNotWriting);
}

void Writer::Run(std::stop_token stop, std::promise<Result<void>>& opened) {
  // The connection is opened here so that it belongs to this thread for its whole life.
  auto store_or = SqliteStore::Open(options_.path, options_.open);
  if (!store_or) {
    opened.set_value(Error(store_or.error()));
    return;
  }
  std::unique_ptr<SqliteStore> store = std::move(*store_or);
  store->SetLockWaitObserver(
      [this](bool waiting) { lock_wait_since_ns_.store(waiting ? SteadyNowNs() : kNotWriting); });
  opened.set_value(Result<void>());

  const bool prune_enabled = options_.prune_interval.count() > 0;
  auto next_prune = SteadyClock::now() + options_.prune_interval;
  std::vector<probes::ProbeResult> batch;
  batch.reserve(options_.batch_rows);

  for (;;) {
    bool stopping = false;
    bool full_batch_waiting = false;
    {
      std::unique_lock lock(mu_);
      auto ready = [&] {
        return queue_.size() >= options_.batch_rows ||
               (flush_target_ > done_seq_ && !queue_.empty()) || stop.stop_requested();
      };
      while (!ready()) {
        auto deadline = prune_enabled ? next_prune : SteadyClock::time_point::max();
        const bool was_empty = queue_.empty();
        if (!was_empty) {
          deadline = std::min(deadline, queue_.front().enqueued_at + options_.flush_interval);
        }
        if (SteadyClock::now() >= deadline) break;
        // A first result in an empty queue sets a new deadline: wake up to recompute it.
        work_cv_.wait_until(lock, stop, deadline,
                            [&] { return ready() || (was_empty && !queue_.empty()); });
      }
      const size_t n = std::min(options_.batch_rows, queue_.size());
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front().result));
        queue_.pop_front();
      }
      in_flight_ = n;
      stopping = stop.stop_requested();
      full_batch_waiting = queue_.size() >= options_.batch_rows;
    }

    if (!batch.empty()) WriteBatch(*store, batch);

    if (prune_enabled && !full_batch_waiting && SteadyClock::now() >= next_prune) {
      const bool more = PruneStep(*store);
      // Behind on retention: continue right after the next batch instead of in one interval.
      next_prune = more ? SteadyClock::now() : SteadyClock::now() + options_.prune_interval;
    }

    if (stopping) {
      std::lock_guard lock(mu_);
      if (queue_.empty()) break;
    }
  }
  FinalCheckpoint(*store);
  store.reset();  // closed on this thread
}

void Writer::FinalCheckpoint(SqliteStore& store) {
  // Closing checkpoints only when this is the last connection to the file; without this,
  // committed rows may stay in the WAL, and the database file alone (a plain copy of it)
  // would miss them, or every table.
  auto r = store.Checkpoint();
  if (!r) {
    log::Warn("storage checkpoint at stop failed: the database file needs its -wal file")
        .Kv("path", options_.path)
        .Kv("error", r.error());
  } else if (!r->complete) {
    log::Warn(
        "storage checkpoint at stop incomplete: another connection is still reading; the "
        "database file needs its -wal file")
        .Kv("path", options_.path)
        .Kv("wal_frames", r->wal_frames)
        .Kv("copied_frames", r->copied);
  }
}

void Writer::WriteBatch(SqliteStore& store, std::vector<probes::ProbeResult>& batch) {
  auto backoff = options_.retry_backoff;
  bool committed = false;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    const auto start = SteadyClock::now();
    BeginWrite();
    auto r = store.Insert(batch);
    EndWrite(/*commit_failed=*/!r);
    if (r) {
      const auto latency =
          std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - start);
      last_batch_latency_us_.store(latency.count());
      rows_written_.fetch_add(batch.size());
      batches_.fetch_add(1);
      committed = true;
      break;
    }
    write_errors_.fetch_add(1);
    log::Warn("storage batch write failed")
        .Kv("rows", static_cast<uint64_t>(batch.size()))
        .Kv("attempt", attempt)
        .Kv("max_attempts", options_.max_attempts)
        .Kv("error", r.error());
    if (attempt < options_.max_attempts) {
      // Not a synchronisation: a pause before retrying a failed transaction on this thread.
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
    }
  }
  if (!committed) {
    rows_lost_.fetch_add(batch.size());
    log::Error("storage batch lost after retries")
        .Kv("rows", static_cast<uint64_t>(batch.size()))
        .Kv("attempts", options_.max_attempts);
  }
  {
    std::lock_guard lock(mu_);
    done_seq_ += batch.size();
    in_flight_ = 0;
  }
  done_cv_.notify_all();
  batch.clear();
}

bool Writer::PruneStep(SqliteStore& store) {
  prune_steps_.fetch_add(1);
  BeginWrite();
  auto r = store.Prune(clock_.Now(), options_.retention, options_.prune_max_rows);
  EndWrite(std::nullopt);
  if (!r) {
    prune_errors_.fetch_add(1);
    log::Warn("storage prune failed").Kv("error", r.error());
    return false;
  }
  rows_pruned_.fetch_add(static_cast<uint64_t>(r->Total()));
  if (r->Total() > 0) {
    log::Debug("storage pruned")
        .Kv("raw_results", r->raw_results)
        .Kv("failed_results", r->failed_results)
        .Kv("minute_rollups", r->minute_rollups)
        .Kv("hour_rollups", r->hour_rollups)
        .Kv("more", r->more);
  }
  return r->more;
}

}  // namespace gatewatch::storage
