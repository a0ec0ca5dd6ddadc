#include "task_table.hpp"

namespace procpool::detail {

std::uint32_t TaskTable::allocate() {
  std::uint32_t index;
  if (free_.empty()) {
    index = static_cast<std::uint32_t>(tasks_.size());
    tasks_.emplace_back();
  } else {
    index = free_.back();
    free_.pop_back();
  }
  TaskRecord& task = tasks_[index];
  ++task.generation;
  task.id = (std::uint64_t{task.generation} << 32) | index;
  return index;
}

void TaskTable::free(std::uint32_t index) {
  TaskRecord& task = tasks_[index];
  task.id = 0;
  task.slot = -1;
  task.abandoned = false;
  if (task.payload.capacity() > kKeptPayloadCapacity) {
    if (task.payload.capacity() > large_spare_.capacity()) large_spare_.swap(task.payload);
    std::string().swap(task.payload);
  }
  free_.push_back(index);
}

void TaskTable::store_payload(std::uint32_t index, std::string_view payload) {
  std::string& buffer = tasks_[index].payload;
  if (payload.size() > buffer.capacity() && payload.size() <= large_spare_.capacity()) {
    buffer.swap(large_spare_);  // the record's small buffer waits there instead
  }
  buffer.assign(payload);
}

}  // namespace procpool::detail
