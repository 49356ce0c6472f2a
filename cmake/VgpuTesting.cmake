# Helpers for registering tests; included by the top-level CMakeLists.txt so that every
# component can register its own tests next to its code.
if(GGML_VIRTGPU_TESTS)
    find_library(CMOCKA_LIBRARY cmocka REQUIRED)
    find_path(CMOCKA_INCLUDE_DIR cmocka.h REQUIRED)
endif()

# vgpu_unit_test(NAME SOURCES... LIBS libs...): one cmocka executable, registered with CTest
# as unit.NAME (label "unit").
function(vgpu_unit_test name)
    cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
    add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
    target_include_directories(${name} SYSTEM PRIVATE ${CMOCKA_INCLUDE_DIR})
    target_link_libraries(${name} PRIVATE ${CMOCKA_LIBRARY} ${ARG_LIBS})
    add_test(NAME unit.${name} COMMAND ${name})
    set_tests_properties(unit.${name} PROPERTIES LABELS "unit;sanitize" TIMEOUT 300)
endfunction()

# In a sanitizer build our guest module is instrumented, but the programs that load it (the
# dependency's tools) are not: the sanitizer runtimes must then be preloaded into them.
set(VGPU_PRELOAD "")
foreach(san address undefined)
    if(GGML_VIRTGPU_SANITIZE MATCHES "${san}")
        set(lib libasan.so)
        if(san STREQUAL "undefined")
            set(lib libubsan.so)
        endif()
        execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${lib}
                        OUTPUT_VARIABLE path OUTPUT_STRIP_TRAILING_WHITESPACE)
        list(APPEND VGPU_PRELOAD ${path})
    endif()
endforeach()
string(REPLACE ";" ":" VGPU_PRELOAD "${VGPU_PRELOAD}")

# vgpu_integration_test(NAME SCRIPT [ARGS...] [LABELS l...] [TIMEOUT s]): a script that drives
# the real binaries; it gets the build, the dependency's bin/ and a scratch directory through
# the environment (tests/integration/lib.sh).
function(vgpu_integration_test name script)
    cmake_parse_arguments(ARG "" "TIMEOUT" "LABELS" ${ARGN})
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 600)
    endif()
    add_test(NAME ${name} COMMAND ${script} ${ARG_UNPARSED_ARGUMENTS})
    set_tests_properties(${name} PROPERTIES
        LABELS "integration;${ARG_LABELS}"
        TIMEOUT ${ARG_TIMEOUT}
        ENVIRONMENT "VGPU_BUILD=${CMAKE_BINARY_DIR};LLAMA_BIN=${LLAMA_BIN};VGPU_SCRATCH=${CMAKE_BINARY_DIR}/test-scratch/${name};VGPU_PRELOAD=${VGPU_PRELOAD}")
endfunction()
