# Third-party packages, all from Debian 12 (see .ci/install-deps).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
# MPI is the data plane between workers (DESIGN.md); required so every build has it.
find_package(MPI REQUIRED COMPONENTS CXX)
# gRPC and protobuf for the public API and the control plane. Debian ships no protobuf CMake
# config, so protobuf is found in module mode; gRPC has a config package.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
if(STRATA_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
  include(GoogleTest)
endif()
