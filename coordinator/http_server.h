// A minimal HTTP/1.1 server for the Prometheus scrape endpoint: GET /metrics answers with the
// text a callback renders; anything else gets 404 or 405. One thread, one connection at a time,
// short socket timeouts, so a slow or hostile client cannot hold it for long.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace strata::coordinator {

class HttpServer {
 public:
  using Render = std::function<std::string()>;
  // Binds HOST:PORT (port 0 picks one) and starts serving `path` with `render`.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, const std::string& path,
                                                           Render render);
  ~HttpServer();
  int port() const { return port_; }

 private:
  HttpServer(int fd, int port, std::string path, Render render);
  void Loop();
  void Handle(int client);

  int listen_fd_, port_;
  int wake_[2] = {-1, -1};  // a write ends Loop
  std::string path_;
  Render render_;
  std::thread thread_;
};

}  // namespace strata::coordinator
