#include "run/metrics_server.hpp"

#include <atomic>    // sessions
#include <chrono>    // timeouts
#include <optional>  // the parser, per request
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/interrupt_signals.hpp"  // start_thread_without_signals

namespace procpool::tool {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::chrono::seconds kRequestTimeout{10};
constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr int kMaxSessions = 32;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const std::function<std::string()>& render,
          std::atomic<int>& sessions)
      : stream_(std::move(socket)), render_(render), sessions_(sessions) {}
  ~Session() { sessions_.fetch_sub(1); }

  void read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       self->on_read(error);
                     });
  }

 private:
  void on_read(beast::error_code error) {
    if (error) return close();  // the client went, timed out, or sent what is not HTTP
    const http::request<http::empty_body>& request = parser_->get();
    response_ = {};
    response_.version(request.version());
    response_.keep_alive(request.keep_alive());
    response_.set(http::field::server, "procpool");
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      response_.result(http::status::method_not_allowed);
      response_.set(http::field::allow, "GET, HEAD");
      response_.set(http::field::content_type, "text/plain; charset=utf-8");
      response_.body() = "only GET /metrics\n";
    } else if (path != "/metrics") {
      response_.result(http::status::not_found);
      response_.set(http::field::content_type, "text/plain; charset=utf-8");
      response_.body() = "not found: the metrics are at /metrics\n";
    } else {
      try {
        response_.body() = render_();
        response_.result(http::status::ok);
        response_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      } catch (const std::exception& e) {  // a scrape fails, never the daemon
        response_.result(http::status::internal_server_error);
        response_.set(http::field::content_type, "text/plain; charset=utf-8");
        response_.body() = std::string("cannot render the metrics: ") + e.what() + "\n";
      }
    }
    response_.prepare_payload();
    if (request.method() == http::verb::head) response_.body().clear();
    stream_.expires_after(kRequestTimeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code write_error, std::size_t) {
                        if (write_error || !self->response_.keep_alive()) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  const std::function<std::string()>& render_;
  std::atomic<int>& sessions_;
};

tcp::endpoint parse_endpoint(const std::string& address) {
  std::string host = "127.0.0.1";
  std::string port = address;
  if (const std::size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
  }
  unsigned long number = 0;
  std::size_t used = 0;
  try {
    number = std::stoul(port, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (port.empty() || used != port.size() || number > 65535) {
    throw MetricsServerError("--metrics " + address +
                             ": not PORT or HOST:PORT (a port is 0 to 65535)");
  }
  beast::error_code error;
  const asio::ip::address ip = asio::ip::make_address(host, error);
  if (error) {
    throw MetricsServerError("--metrics " + address + ": '" + host +
                             "' is not an IP address (a name is not looked up)");
  }
  return {ip, static_cast<unsigned short>(number)};
}

}  // namespace

class MetricsServer::Impl {
 public:
  Impl(const std::string& address, std::function<std::string()> render)
      : render_(std::move(render)), acceptor_(asio::make_strand(io_)) {
    const tcp::endpoint endpoint = parse_endpoint(address);
    beast::error_code error;
    acceptor_.open(endpoint.protocol(), error);
    if (!error) acceptor_.set_option(asio::socket_base::reuse_address(true), error);
    if (!error) acceptor_.bind(endpoint, error);
    if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      throw MetricsServerError("--metrics " + address + ": cannot listen: " + error.message());
    }
    const tcp::endpoint bound = acceptor_.local_endpoint();
    endpoint_ = (bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                         : bound.address().to_string()) +
                ":" + std::to_string(bound.port());
    accept();
    thread_ = start_thread_without_signals([this] { io_.run(); });
  }

  ~Impl() {
    io_.stop();
    thread_.join();
  }

  const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  void accept() {
    acceptor_.async_accept(
        asio::make_strand(io_), [this](beast::error_code error, tcp::socket socket) {
          if (error == asio::error::operation_aborted) return;
          if (error) {
            // Out of fds, say: the connection stays in the backlog, and accepting again at
            // once would spin. A pause, then again.
            retry_.expires_after(std::chrono::milliseconds(100));
            retry_.async_wait([this](beast::error_code waited) {
              if (waited != asio::error::operation_aborted) accept();
            });
            return;
          }
          if (sessions_.fetch_add(1) >= kMaxSessions) {
            sessions_.fetch_sub(1);  // too many: closed at once
          } else {
            std::make_shared<Session>(std::move(socket), render_, sessions_)->read();
          }
          accept();
        });
  }

  // Declared before io_: the sessions its handlers still hold at its destruction use both.
  std::function<std::string()> render_;
  std::atomic<int> sessions_{0};
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer retry_{io_};
  std::string endpoint_;
  std::thread thread_;
};

MetricsServer::MetricsServer(const std::string& address, std::function<std::string()> render)
    : impl_(std::make_unique<Impl>(address, std::move(render))) {}
MetricsServer::~MetricsServer() = default;
const std::string& MetricsServer::endpoint() const noexcept { return impl_->endpoint(); }

}  // namespace procpool::tool
