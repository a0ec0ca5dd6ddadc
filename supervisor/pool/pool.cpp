#include "procpool/pool.hpp"

#include "pool_core.hpp"

namespace procpool {

// Owned through PoolCore::destroy, which decides where the core may be destroyed (not under
// its own callbacks, not in a fork()ed child).
Pool::Pool(PoolOptions options)
    : core_(new detail::PoolCore(std::move(options)), &detail::PoolCore::destroy) {
  core_->start();
}

Pool::~Pool() {
  // In a fork()ed child nothing is stopped or joined: the workers and threads are the parent's.
  if (core_ && !core_->forked()) core_->shutdown();
}

Future<std::string> Pool::submit(std::string_view handler, std::string_view payload,
                                 const TaskOptions& options) {
  core_->check_owner();
  return core_->submit_future(handler, payload, options);
}

void Pool::submit_completion(std::string_view handler, std::string_view payload,
                             const TaskOptions& options, detail::Completion completion) {
  core_->check_owner();
  core_->submit(handler, payload, options, std::move(completion));
}

void Pool::submit_batch_erased(std::string_view handler, std::span<const std::string_view> payloads,
                               const TaskOptions& options, detail::BatchCallback& batch) {
  core_->check_owner();
  core_->submit_batch(handler, payloads, options, batch);
}

void Pool::submit_chunked_erased(std::string_view handler,
                                 std::span<const std::string_view> payloads, std::size_t chunk_size,
                                 const TaskOptions& options,
                                 std::shared_ptr<detail::ItemCallback> on_item) {
  core_->check_owner();
  if (options.on_progress) {
    throw Error(
        "procpool::Pool::submit_chunked: a chunk's items stream no progress "
        "(TaskOptions::on_progress is for submit() and submit_batch())");
  }
  core_->submit_chunked(handler, payloads, chunk_size, options, std::move(on_item));
}

void Pool::wait_idle() { core_->wait_idle(); }

void Pool::shutdown() {
  core_->check_owner();
  core_->shutdown();
}

void Pool::terminate() {
  core_->check_owner();
  core_->terminate();
}

PoolMetrics Pool::metrics() const {
  core_->check_owner();
  PoolMetrics m = core_->metrics();
  m.callback_errors = core_->callback_errors();
  return m;
}

std::span<std::byte> Pool::shared_memory() const noexcept {
  if (core_->forked()) return {};  // the parent's workers read it
  return core_->shared_memory();
}

std::span<std::byte> Pool::region(std::string_view name) const {
  core_->check_owner();
  return core_->region(name);
}

std::vector<std::string> Pool::handlers() const {
  core_->check_owner();
  return core_->handlers();
}

}  // namespace procpool
