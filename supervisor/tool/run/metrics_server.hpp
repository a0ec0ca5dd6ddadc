#pragma once

// The daemon's /metrics endpoint (procpool run --metrics; docs/metrics.md): HTTP/1.1 with
// Boost.Beast on a thread of its own, GET /metrics answered with what `render` returns (the
// Prometheus text format), anything else 404 or 405. Loopback unless told otherwise. A client
// is given 10 s per request and at most 8 KiB of header; at most 32 are served at once.

#include <functional>  // render
#include <memory>      // the implementation
#include <string>

#include "procpool/error.hpp"

namespace procpool::tool {

class MetricsServerError : public Error {
 public:
  using Error::Error;
};

class MetricsServer {
 public:
  // `address`: "PORT" (on 127.0.0.1), "HOST:PORT" or "[V6]:PORT"; port 0 picks a free one.
  // Binds and listens before it returns; throws MetricsServerError saying why it cannot.
  // `render` runs on the server's thread, once per scrape.
  MetricsServer(const std::string& address, std::function<std::string()> render);
  // Stops serving and joins the thread.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Where it listens: "127.0.0.1:9464".
  const std::string& endpoint() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace procpool::tool
