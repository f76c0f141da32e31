# The installed C++ SDK works for a project outside this tree: installs the client_sdk component
# of BUILD_DIR into WORK_DIR/prefix, configures examples/cpp (find_package(DreamBoothClient),
# target DreamBooth::client) against it alone, builds quickstart.cc and runs it: its usage line,
# then a real gRPC call that fails UNAVAILABLE on a port nobody listens on.
# Run by ctest: cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P sdk_install_test.cmake
function(run_checked what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
run_checked("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --component client_sdk
  --prefix ${prefix})
foreach(installed include/dreambooth-client/client/client.h lib/libdreambooth_client.a
    lib/cmake/DreamBoothClient/DreamBoothClientConfig.cmake)
  if(NOT EXISTS ${prefix}/${installed})
    message(FATAL_ERROR "not installed: ${installed}")
  endif()
endforeach()
file(GLOB_RECURSE gateway_headers ${prefix}/include/*worker_gateway*)
if(gateway_headers)
  message(FATAL_ERROR "the worker gateway is not part of the public SDK: ${gateway_headers}")
endif()

run_checked("configure examples/cpp" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/cpp
  -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run_checked("build examples/cpp" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)

execute_process(COMMAND ${WORK_DIR}/build/quickstart RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "usage: quickstart OUT_DIR IMAGE")
  message(FATAL_ERROR "quickstart without arguments: exit ${rc}, ${err}")
endif()
file(WRITE ${WORK_DIR}/a.png "not read by anyone")
execute_process(COMMAND ${CMAKE_COMMAND} -E env DREAMBOOTH_SERVER=127.0.0.1:1
  ${WORK_DIR}/build/quickstart ${WORK_DIR}/out ${WORK_DIR}/a.png
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "upload: UNAVAILABLE")
  message(FATAL_ERROR "quickstart against no server: exit ${rc}, ${err}")
endif()
message(STATUS "installed SDK: quickstart built and ran")
