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
    set_tests_properties(unit.${name} PROPERTIES LABELS "unit" TIMEOUT 300)
endfunction()
