# The one-way dependency rule (docs/design.md, "Tiers"), checked on every #include "..." line.
#
#   cmake [-DROOT=<source tree>] [-DSTAMP=<file>] -P cmake/check_includes.cmake
#
# Every source and header under the tier folders belongs to one tier, and may include headers
# of its own tier or of a lower one, plus the vendored third_party/ headers (stb/, doctest/).
# Anything else prints `file:line: <tier> may not include <header> (<tier>)` (or names a header
# that belongs to no tier) and fails. On success STAMP, when given, is touched: the build runs
# this script through a custom command whose output the libraries depend on, so an upward
# include fails the build. ROOT defaults to the tree this script lives in.

cmake_minimum_required(VERSION 3.24)

if(NOT DEFINED ROOT)
  get_filename_component(ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
endif()

# Tiers, lowest first: a file of tier i may include a header of tier j <= i.
set(tier_names base cuda core/cpu "core engine" "core ops" core datasets layers zoo probe tools tests)
# path prefix = tier index; the first rule that matches a path decides (specific rules first).
set(tier_rules
  "base/=0"
  "cuda/=1"
  "core/cpu/=2"
  "core/tensor.h=3" "core/tensor.cpp=3" "core/autograd.h=3" "core/autograd.cpp=3"
  "core/random.h=3" "core/random.cpp=3"
  "core/ops/=4" "core/ops.h=4" "core/op_list.h=4"
  "core/=5"
  "datasets/=6"
  "layers/=7"
  "zoo/=8"
  "probe/=9"
  "tools/=10"
  "tests/=11" "bench/=11")
# Vendored headers (third_party/ is on the include path): any tier may include them.
set(third_party_prefixes "stb/" "doctest/")
# Edges allowed against the order, each with its reason in docs/design.md ("Tiers").
# core/autograd.cpp: backward() sums the gradients that meet at a tensor with the add op.
set(exceptions "core/autograd.cpp>core/ops/elementwise.h")

function(tier_of path out)
  set(result -1)
  foreach(rule IN LISTS tier_rules)
    string(FIND "${rule}" "=" eq REVERSE)
    string(SUBSTRING "${rule}" 0 ${eq} prefix)
    math(EXPR at "${eq} + 1")
    string(SUBSTRING "${rule}" ${at} -1 index)
    string(FIND "${path}" "${prefix}" pos)
    if(pos EQUAL 0)
      set(result ${index})
      break()
    endif()
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

set(patterns)
foreach(dir base cuda core datasets layers zoo tools tests bench)
  foreach(ext h cuh cpp cu)
    list(APPEND patterns "${dir}/*.${ext}")
  endforeach()
endforeach()
set(files)
foreach(pattern IN LISTS patterns)
  file(GLOB_RECURSE found RELATIVE "${ROOT}" "${ROOT}/${pattern}")
  list(APPEND files ${found})
endforeach()
list(REMOVE_DUPLICATES files)
list(SORT files)

set(violations 0)
foreach(file IN LISTS files)
  tier_of("${file}" tier)
  if(tier LESS 0)
    continue()
  endif()
  list(GET tier_names ${tier} tier_name)
  file(STRINGS "${ROOT}/${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      continue()
    endif()
    set(header "${CMAKE_MATCH_1}")
    set(allowed FALSE)
    foreach(prefix IN LISTS third_party_prefixes)
      string(FIND "${header}" "${prefix}" pos)
      if(pos EQUAL 0)
        set(allowed TRUE)
      endif()
    endforeach()
    if("${file}>${header}" IN_LIST exceptions)
      set(allowed TRUE)
    endif()
    if(allowed)
      continue()
    endif()
    tier_of("${header}" header_tier)
    if(header_tier GREATER_EQUAL 0 AND NOT header_tier GREATER tier)
      continue()
    endif()
    # A violation: find its line number (the first line that reads so).
    file(READ "${ROOT}/${file}" content)
    string(FIND "${content}" "${line}" pos)
    set(number "?")
    if(pos GREATER_EQUAL 0)
      string(SUBSTRING "${content}" 0 ${pos} before)
      string(REGEX MATCHALL "\n" newlines "${before}")
      list(LENGTH newlines number)
      math(EXPR number "${number} + 1")
    endif()
    if(header_tier LESS 0)
      message(NOTICE "${file}:${number}: ${tier_name} includes ${header}, which is in no tier "
                     "(cmake/check_includes.cmake lists them)")
    else()
      list(GET tier_names ${header_tier} header_name)
      message(NOTICE "${file}:${number}: ${tier_name} may not include ${header} (${header_name})")
    endif()
    math(EXPR violations "${violations} + 1")
  endforeach()
endforeach()

if(violations GREATER 0)
  message(FATAL_ERROR "${violations} include(s) against the one-way dependency rule "
                      "(docs/design.md, \"Tiers\")")
endif()
if(DEFINED STAMP)
  file(TOUCH "${STAMP}")
endif()
