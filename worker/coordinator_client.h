// Coordinator mode of strata-worker: this rank dials the coordinator's Cluster service, says
// hello, loads the shard it is assigned, reports ready, then runs every step plan it receives.
// The last stage's tensor rank 0 sends back the sampled tokens.
#pragma once

#include <string>

namespace strata {
class Communicator;

struct CoordinatorClientConfig {
  std::string coordinator;  // HOST:PORT of the cluster service
  std::string tls_ca_pem;       // non-empty: TLS, trusting this CA
  std::string tls_server_name;  // name to verify in the coordinator's certificate (default: its host)
  std::string join_token;       // sent as `authorization: Bearer TOKEN`
  int threads = 1;
  double connect_timeout_s = 60;
};

// Returns the process exit code. All ranks of the MPI world call it together.
int RunCoordinatorMode(const CoordinatorClientConfig& config, Communicator* world);

}  // namespace strata
