# Included before find_package(Torch). A CUDA build of PyTorch's wheel (torch==2.x+cu13) ships
# LibTorch, but its TorchConfig looks for the CUDA toolkit, nvrtc and cuDNN the way a system-wide
# CUDA install lays them out. In a wheel environment they are elsewhere:
#   - nvcc and the CUDA headers: the toolkit (/usr/local/cuda, $CUDA_HOME or $CUDA_PATH);
#     a `nvcc` found on PATH may be a wrapper script, so the toolkit's own folder is preferred;
#   - libnvrtc.so.N, libcublas.so.N, ...: site-packages/nvidia/cu13/lib (cu12: nvidia/<lib>/lib),
#     versioned names only, which find_library's plain names miss;
#   - cuDNN and NCCL: site-packages/nvidia/cudnn/{include,lib}, site-packages/nvidia/nccl/....
# This file presets those cache entries from the wheel's folders, when the Torch on
# CMAKE_PREFIX_PATH (or Torch_DIR) sits in a site-packages that has nvidia/; values given on
# the command line win. It sets TUNE_WHEEL_NVIDIA_DIR (the nvidia/ folder) and
# TUNE_WHEEL_CUDA_INCLUDE_DIRS for trainer/.
# Nothing here links libcuda: LibTorch loads the driver at run time, so a machine without a
# driver (CI) links, and a GPU machine uses its real libcuda.

set(TUNE_WHEEL_NVIDIA_DIR "")
set(_tune_torch_cmake_dirs ${CMAKE_PREFIX_PATH})
if(Torch_DIR)
  list(PREPEND _tune_torch_cmake_dirs "${Torch_DIR}/..")
endif()
foreach(_dir IN LISTS _tune_torch_cmake_dirs)
  if(EXISTS "${_dir}/Torch/TorchConfig.cmake")
    # <site-packages>/torch/share/cmake
    get_filename_component(_site "${_dir}/../../.." ABSOLUTE)
    if(IS_DIRECTORY "${_site}/nvidia")
      set(TUNE_WHEEL_NVIDIA_DIR "${_site}/nvidia")
    endif()
    break()
  endif()
endforeach()
if(NOT TUNE_WHEEL_NVIDIA_DIR)
  return()
endif()
message(STATUS "PyTorch wheel's NVIDIA libraries: ${TUNE_WHEEL_NVIDIA_DIR}")

# The CUDA math libraries' headers (cublas_v2.h, cusparse.h, ...; ATen/cuda/CUDAContext.h
# includes them) are in the wheels, not in a minimal toolkit: trainer/ adds these folders.
file(GLOB TUNE_WHEEL_CUDA_INCLUDE_DIRS LIST_DIRECTORIES true "${TUNE_WHEEL_NVIDIA_DIR}/cu[0-9]*/include"
     "${TUNE_WHEEL_NVIDIA_DIR}/cublas/include" "${TUNE_WHEEL_NVIDIA_DIR}/cusparse/include"
     "${TUNE_WHEEL_NVIDIA_DIR}/cusolver/include" "${TUNE_WHEEL_NVIDIA_DIR}/curand/include"
     "${TUNE_WHEEL_NVIDIA_DIR}/cufft/include" "${TUNE_WHEEL_NVIDIA_DIR}/cuda_nvrtc/include")

# The toolkit: nvcc's real folder, so FindCUDA does not take /usr/local for the toolkit when
# PATH has a /usr/local/bin/nvcc wrapper.
if(NOT DEFINED CUDA_TOOLKIT_ROOT_DIR AND NOT DEFINED CMAKE_CUDA_COMPILER)
  find_program(TUNE_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH /usr/local/cuda PATH_SUFFIXES bin
               NO_DEFAULT_PATH)
  find_program(TUNE_NVCC nvcc)
  if(TUNE_NVCC)
    get_filename_component(_nvcc "${TUNE_NVCC}" REALPATH)
    get_filename_component(_cuda_root "${_nvcc}/../.." ABSOLUTE)
    if(EXISTS "${_cuda_root}/include/cuda_runtime_api.h")
      set(CUDA_TOOLKIT_ROOT_DIR "${_cuda_root}" CACHE PATH "CUDA toolkit (nvcc, headers)")
      set(CMAKE_CUDA_COMPILER "${_cuda_root}/bin/nvcc" CACHE FILEPATH "CUDA compiler")
    endif()
  endif()
endif()
if(DEFINED CUDA_TOOLKIT_ROOT_DIR AND NOT DEFINED CUDAToolkit_ROOT)
  set(CUDAToolkit_ROOT "${CUDA_TOOLKIT_ROOT_DIR}")
endif()

# The project compiles no CUDA kernels; an explicit list spares torch's configure the GPU
# probe (a test program that needs a driver). $TORCH_CUDA_ARCH_LIST or -D wins.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures for torch's nvcc flags")
endif()

# _tune_wheel_library(VAR NAME): VAR = <nvidia>/*/lib/libNAME.so.<major> (the file the wheel ships).
function(_tune_wheel_library var name)
  if(${var})
    return()
  endif()
  file(GLOB _found "${TUNE_WHEEL_NVIDIA_DIR}/*/lib/lib${name}.so.[0-9]*")
  if(_found)
    list(SORT _found)
    list(GET _found 0 _first)
    set(${var} "${_first}" CACHE FILEPATH "lib${name} from PyTorch's NVIDIA wheels")
  endif()
endfunction()

# nvrtc goes into TORCH_LIBRARIES (TorchConfig's CUDA_NVRTC_LIB); the others are what
# FindCUDAToolkit makes CUDA:: targets of, for anything that links them.
foreach(_lib nvrtc cublas cublasLt curand cufft cusparse cusolver nvJitLink cupti)
  _tune_wheel_library(CUDA_${_lib}_LIBRARY ${_lib})
endforeach()

# cuDNN: torch::cudnn, and the version shows in the configure log.
if(IS_DIRECTORY "${TUNE_WHEEL_NVIDIA_DIR}/cudnn/include")
  set(CAFFE2_USE_CUDNN ON CACHE BOOL "Find cuDNN for torch::cudnn")
  set(CUDNN_INCLUDE_PATH "${TUNE_WHEEL_NVIDIA_DIR}/cudnn/include" CACHE PATH "cuDNN headers")
  _tune_wheel_library(CUDNN_LIBRARY_PATH cudnn)
endif()
