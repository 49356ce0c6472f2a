# Corpus replay tests for every build (any compiler, no libFuzzer): replay-<target> runs the
# fuzz entry point once over each committed corpus file (tests/fuzz/replay.c). Registered as
# fuzz-replay.<target> with labels unit and sanitize, so the plain and the ASan/UBSan builds
# both catch a regression of any input the fuzzers ever kept.
#
# Included from tests/CMakeLists.txt:
#     include(${PROJECT_SOURCE_DIR}/tests/fuzz/replay.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

if(GGML_VIRTGPU_HOST)
    vgpu_fuzz_code_library(vgpu_replay_code)
    foreach(t ${VGPU_FUZZ_TARGETS})
        vgpu_fuzz_executable(replay-${t} ${t} vgpu_replay_code ${VGPU_FUZZ_DIR}/replay.c)
        add_test(NAME fuzz-replay.${t} COMMAND replay-${t} ${VGPU_FUZZ_DIR}/corpus/${t})
        set_tests_properties(fuzz-replay.${t} PROPERTIES LABELS "unit;sanitize;fuzz-replay" TIMEOUT 600)
    endforeach()
endif()
