#include "procpool/pool.hpp"

#include "pool_core.hpp"

namespace procpool {

Pool::Pool(PoolOptions options) : core_(std::make_shared<detail::PoolCore>(std::move(options))) {
  core_->start();
}

Pool::~Pool() {
  if (core_) core_->shutdown();
}

std::future<std::string> Pool::submit(std::string_view handler, std::string_view payload,
                                      const TaskOptions& options) {
  return core_->submit_future(handler, payload, options);
}

void Pool::submit_completion(std::string_view handler, std::string_view payload,
                             const TaskOptions& options, detail::Completion completion) {
  core_->submit(handler, payload, options, std::move(completion));
}

void Pool::submit_batch_erased(std::string_view handler, std::span<const std::string_view> payloads,
                               const TaskOptions& options, void* context, CompletionFactory make) {
  core_->submit_batch(handler, payloads, options, context, make);
}

void Pool::submit_chunked_erased(std::string_view handler,
                                 std::span<const std::string_view> payloads, std::size_t chunk_size,
                                 const TaskOptions& options,
                                 std::shared_ptr<detail::ItemCallback> on_item) {
  core_->submit_chunked(handler, payloads, chunk_size, options, std::move(on_item));
}

void Pool::wait_idle() { core_->wait_idle(); }
void Pool::shutdown() { core_->shutdown(); }
void Pool::terminate() { core_->terminate(); }
PoolMetrics Pool::metrics() const { return core_->metrics(); }
std::span<std::byte> Pool::shared_memory() const noexcept { return core_->shared_memory(); }
std::vector<std::string> Pool::handlers() const { return core_->handlers(); }

}  // namespace procpool
