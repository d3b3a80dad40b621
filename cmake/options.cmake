# Build options. Every option has a default that works on a fresh Debian 12 machine.
option(STRATA_BUILD_TESTS "Build the GoogleTest suite" ON)
option(STRATA_BUILD_BENCH "Build the benchmarks in bench/" ON)
# x86-64-v3 = AVX2, FMA, F16C, BMI2: every x86 server since 2015. Turn off for a portable build
# (kernels then use whatever the compiler can vectorize for baseline x86-64).
option(STRATA_X86_64_V3 "Compile for x86-64-v3 (AVX2/FMA/F16C)" ON)
option(STRATA_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
# libFuzzer targets in fuzz/ (clang only); tests/sanitize.sh builds them together with STRATA_SANITIZE.
option(STRATA_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)

set(STRATA_COMMON_FLAGS -Wall -Wextra -Wno-unused-parameter -fopenmp-simd)
if(STRATA_X86_64_V3 AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  list(APPEND STRATA_COMMON_FLAGS -march=x86-64-v3)
endif()
if(STRATA_SANITIZE)
  # Undefined behaviour aborts (it would otherwise print and carry on, and a test would pass).
  list(APPEND STRATA_COMMON_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(STRATA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "STRATA_FUZZ=ON needs clang (libFuzzer), but the C++ compiler is "
                        "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}. Configure a fresh build directory with "
                        "-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ (tests/sanitize.sh does).")
  endif()
  if(NOT STRATA_SANITIZE)
    message(FATAL_ERROR "STRATA_FUZZ=ON needs STRATA_SANITIZE=ON: fuzzing without AddressSanitizer misses the "
                        "memory errors it is there to find.")
  endif()
endif()
