# CTest entry include_check_planted: runs cmake/check_includes.cmake on two small trees made
# under WORK: one that keeps the rule (must pass) and the same with upward includes planted
# (must fail, naming each with file:line and both tiers).
#
#   cmake -DWORK=<scratch folder> -P cmake/test_check_includes.cmake
cmake_minimum_required(VERSION 3.24)
set(checker "${CMAKE_CURRENT_LIST_DIR}/check_includes.cmake")
if(NOT DEFINED WORK)
  message(FATAL_ERROR "give -DWORK=<scratch folder>")
endif()
file(REMOVE_RECURSE "${WORK}")

function(plant root path)
  string(REPLACE "|" "\n" text "${ARGN}")
  file(WRITE "${root}/${path}" "${text}\n")
endfunction()

function(run_checker root out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${root} -P ${checker}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

# A tree that keeps the rule: each tier includes its own and lower tiers, third_party, and the
# one listed exception.
set(good "${WORK}/good")
plant(${good} base/error.h "#pragma once|#include <string>")
plant(${good} base/geometry/conv.h "#pragma once|#include \"base/error.h\"")
plant(${good} cuda/conv.cu "#include \"cuda/conv.h\"|#include \"base/geometry/conv.h\"")
plant(${good} cuda/conv.h "#pragma once|#include \"base/error.h\"")
plant(${good} core/cpu/conv.h "#pragma once|#include \"base/geometry/conv.h\"")
plant(${good} core/tensor.h "#pragma once|#include \"base/error.h\"|#include \"cuda/conv.h\"")
plant(${good} core/autograd.cpp "#include \"core/tensor.h\"|#include \"core/ops/elementwise.h\"")
plant(${good} core/ops/elementwise.h "#pragma once|#include \"core/tensor.h\"|#include \"core/cpu/conv.h\"")
plant(${good} core/net.h "#pragma once|#include \"core/ops/elementwise.h\"|#include \"core/proto/mmfuse.pb.h\"")
plant(${good} datasets/image.h "#pragma once|#include \"core/net.h\"|#include \"stb/stb_image.h\"")
plant(${good} layers/data.cpp "#include \"datasets/image.h\"|  #  include \"core/net.h\"")
plant(${good} tools/main.cpp "#include \"layers/conv_params.h\"")
plant(${good} tests/test_x.cpp "#include \"tools/command.h\"|#include \"doctest/doctest.h\"")
run_checker(${good} rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the checker refused a tree that keeps the rule:\n${text}")
endif()

# The same tree with upward includes planted.
set(bad "${WORK}/bad")
file(COPY "${good}/" DESTINATION "${bad}")
plant(${bad} cuda/conv.h "#pragma once|// a comment|#include \"base/error.h\"|#include \"core/tensor.h\"")
plant(${bad} core/tensor.h "#pragma once|#include \"core/ops/elementwise.h\"")
plant(${bad} core/svg.h "#pragma once||#include \"datasets/image.h\"")
plant(${bad} base/dtype.h "#pragma once|#include \"cuda/conv.h\"")
plant(${bad} layers/data.cpp "#include \"datasets/image.h\"|#include \"tests/temp_dir.h\"")
plant(${bad} datasets/list.cpp "#include \"nowhere/x.h\"")
plant(${bad} core/random.cpp "#include \"core/ops/elementwise.h\"")  # the exception is one file's
run_checker(${bad} rc text)
if(rc EQUAL 0)
  message(FATAL_ERROR "the checker passed a tree with upward includes:\n${text}")
endif()
set(expected
  "base/dtype.h:2: base may not include cuda/conv.h (cuda)"
  "core/svg.h:3: core may not include datasets/image.h (datasets)"
  "core/random.cpp:1: core engine may not include core/ops/elementwise.h (core ops)"
  "core/tensor.h:2: core engine may not include core/ops/elementwise.h (core ops)"
  "cuda/conv.h:4: cuda may not include core/tensor.h (core engine)"
  "datasets/list.cpp:1: datasets includes nowhere/x.h, which is in no tier"
  "layers/data.cpp:2: layers may not include tests/temp_dir.h (tests)"
  "7 include(s) against the one-way dependency rule")
foreach(line IN LISTS expected)
  string(FIND "${text}" "${line}" at)
  if(at LESS 0)
    message(FATAL_ERROR "the checker's report lacks \"${line}\":\n${text}")
  endif()
endforeach()
message(STATUS "include check: passes the good tree; on the planted one it reports\n${text}")
file(REMOVE_RECURSE "${WORK}")
