# Third-party packages, all from Debian 12 (see .ci/install-deps).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
# MPI is the data plane between workers (DESIGN.md); required so every build has it.
find_package(MPI REQUIRED COMPONENTS CXX)
if(STRATA_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
  include(GoogleTest)
endif()
