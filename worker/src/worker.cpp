// procpool::Worker and procpool::Task: the SDK's public face over detail::WorkerRuntime.
#include "procpool/worker.hpp"

#include "worker_runtime.hpp"

namespace procpool {

void Task::reply(std::string_view result) { runtime_.reply(*this, result); }
void Task::emit(std::string_view data) { runtime_.emit(*this, data); }
bool Task::cancelled() const noexcept { return runtime_.cancelled(id_); }

Worker::Worker(int argc, char** argv)
    : runtime_(std::make_unique<detail::WorkerRuntime>(argc, argv)) {}
Worker::~Worker() = default;
void Worker::on(std::string name, Handler handler) {
  runtime_->on(std::move(name), std::move(handler));
}
std::string_view Worker::data() const noexcept { return runtime_->data(); }
std::span<std::byte> Worker::shared_memory() const noexcept { return runtime_->shared_memory(); }
std::span<std::byte> Worker::region(std::string_view name) const { return runtime_->region(name); }
int Worker::run() { return runtime_->run(); }

}  // namespace procpool
