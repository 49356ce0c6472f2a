# Shared by tests/fuzz/CMakeLists.txt (the libFuzzer build) and tests/fuzz/replay.cmake (the
# corpus replay tests of every build): the list of targets and how their code is compiled.
#
# The host library's sources and proto/ are compiled straight into each target (not loaded
# as libggml-virtgpu-backend.so): the targets call internal functions (the graph builder, the
# codec), every host line is instrumented for coverage with the target, and a crash stack
# shows host functions without a dlopen boundary. The source list comes from the
# ggml-virtgpu-backend target itself, so it cannot drift from the shipped library.
set(VGPU_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(VGPU_FUZZ_TARGETS codec dispatch graph)
find_package(Threads REQUIRED)

# vgpu_fuzz_code_library(NAME [COMPILE_OPTIONS...]): proto/ and host/ as one static library.
function(vgpu_fuzz_code_library name)
    get_target_property(host_srcs ggml-virtgpu-backend SOURCES)
    get_target_property(host_dir ggml-virtgpu-backend SOURCE_DIR)
    list(TRANSFORM host_srcs PREPEND "${host_dir}/")
    set(proto_dir "${PROJECT_SOURCE_DIR}/proto")
    add_library(${name} STATIC ${host_srcs}
                ${proto_dir}/apir.c ${proto_dir}/codec.c ${proto_dir}/wire.c ${proto_dir}/abi.c)
    target_include_directories(${name} PUBLIC ${host_dir} ${proto_dir} ${VGPU_FUZZ_DIR})
    target_link_libraries(${name} PUBLIC ggml_base ${CMAKE_DL_LIBS} Threads::Threads m)
    target_compile_options(${name} PRIVATE ${ARGN})
endfunction()

# vgpu_fuzz_executable(NAME TARGET CODE_LIBRARY [EXTRA_SOURCES...]): fuzz-TARGET.c with the
# runtime helpers, linked with CODE_LIBRARY. The two ggml_aligned_* symbols are exported so that
# the guard-page allocator in fuzz-runtime.c replaces ggml's (fuzz.h).
function(vgpu_fuzz_executable name target code)
    add_executable(${name} ${VGPU_FUZZ_DIR}/fuzz-${target}.c ${VGPU_FUZZ_DIR}/fuzz-runtime.c ${ARGN})
    target_link_libraries(${name} PRIVATE ${code})
    target_compile_definitions(${name} PRIVATE VGPU_DEFAULT_BACKEND_PATH="${GGML_VIRTGPU_DEFAULT_BACKEND}")
    target_link_options(${name} PRIVATE "LINKER:--export-dynamic-symbol=ggml_aligned_malloc"
                        "LINKER:--export-dynamic-symbol=ggml_aligned_free")
endfunction()
