// cuBLAS, cuDNN and NCCL resolved on first call (cuda/libraries.h). Each function below keeps
// the library's name and C prototype (from its header, which declares it), so every call site in
// cuda/ is unchanged; its body resolves the real function once (a thread-safe static) and
// forwards the arguments. The definitions are hidden (#pragma GCC visibility): the executable
// does not export them, so the loaded libraries' internal calls (cuDNN's sub-libraries calling
// one another, cuBLAS calling cuBLASLt) bind inside the libraries, never to these forwarders.
// A new cuBLAS / cuDNN / NCCL function used in cuda/ gets one line in the lists below (its
// prototype as in the header); without it the link fails with an undefined reference.
#include "cuda/libraries.h"

#include <dlfcn.h>

#include <map>
#include <mutex>
#include <string>

#include "base/error.h"

#pragma GCC visibility push(hidden)
#include <cublas_v2.h>
#ifdef MMFUSE_WITH_CUDNN
#include <cudnn.h>
#endif
#ifdef MMFUSE_WITH_NCCL
#include <nccl.h>
#endif

#define MMF_STRINGIFY_(x) #x
#define MMF_STRINGIFY(x) MMF_STRINGIFY_(x)

namespace {

// The sonames of the major versions mmfuse was compiled against (their ABI).
constexpr const char* kCublas = "libcublas.so." MMF_STRINGIFY(CUBLAS_VER_MAJOR);
#ifdef MMFUSE_WITH_CUDNN
constexpr const char* kCudnn = "libcudnn.so." MMF_STRINGIFY(CUDNN_MAJOR);
#endif
#ifdef MMFUSE_WITH_NCCL
constexpr const char* kNccl = "libnccl.so." MMF_STRINGIFY(NCCL_MAJOR);
#endif

}  // namespace

// X(library, return type, name, (parameters), (arguments)), the prototypes as the headers
// declare them (cublas_v2.h maps cublasSgemm and others to their _v2 names).
#define MMF_CUBLAS_FUNCTIONS(X) \
  X(kCublas, cublasStatus_t, cublasCreate_v2, (cublasHandle_t* handle), (handle)) \
  X(kCublas, cublasStatus_t, cublasDgemmStridedBatched, (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const double* alpha, const double* A, int lda, long long int strideA, const double* B, int ldb, long long int strideB, const double* beta, double* C, int ldc, long long int strideC, int batchCount), (handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount)) \
  X(kCublas, cublasStatus_t, cublasDgemm_v2, (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta, double* C, int ldc), (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)) \
  X(kCublas, cublasStatus_t, cublasGetProperty, (libraryPropertyType type, int* value), (type, value)) \
  X(kCublas, const char*, cublasGetStatusString, (cublasStatus_t status), (status)) \
  X(kCublas, cublasStatus_t, cublasSetMathMode, (cublasHandle_t handle, cublasMath_t mode), (handle, mode)) \
  X(kCublas, cublasStatus_t, cublasSetStream_v2, (cublasHandle_t handle, cudaStream_t streamId), (handle, streamId)) \
  X(kCublas, cublasStatus_t, cublasSgemmStridedBatched, (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const float* alpha, const float* A, int lda, long long int strideA, const float* B, int ldb, long long int strideB, const float* beta, float* C, int ldc, long long int strideC, int batchCount), (handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount)) \
  X(kCublas, cublasStatus_t, cublasSgemm_v2, (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc), (handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc))
#ifdef MMFUSE_WITH_CUDNN
#define MMF_CUDNN_FUNCTIONS(X) \
  X(kCudnn, cudnnStatus_t, cudnnConvolutionBackwardData, (cudnnHandle_t handle, const void *alpha, const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnTensorDescriptor_t dyDesc, const void *dy, const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionBwdDataAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta, const cudnnTensorDescriptor_t dxDesc, void *dx), (handle, alpha, wDesc, w, dyDesc, dy, convDesc, algo, workSpace, workSpaceSizeInBytes, beta, dxDesc, dx)) \
  X(kCudnn, cudnnStatus_t, cudnnConvolutionBackwardFilter, (cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc, const void *x, const cudnnTensorDescriptor_t dyDesc, const void *dy, const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionBwdFilterAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta, const cudnnFilterDescriptor_t dwDesc, void *dw), (handle, alpha, xDesc, x, dyDesc, dy, convDesc, algo, workSpace, workSpaceSizeInBytes, beta, dwDesc, dw)) \
  X(kCudnn, cudnnStatus_t, cudnnConvolutionForward, (cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc, const void *x, const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta, const cudnnTensorDescriptor_t yDesc, void *y), (handle, alpha, xDesc, x, wDesc, w, convDesc, algo, workSpace, workSpaceSizeInBytes, beta, yDesc, y)) \
  X(kCudnn, cudnnStatus_t, cudnnCreate, (cudnnHandle_t *handle), (handle)) \
  X(kCudnn, cudnnStatus_t, cudnnCreateConvolutionDescriptor, (cudnnConvolutionDescriptor_t *convDesc), (convDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnCreateFilterDescriptor, (cudnnFilterDescriptor_t *filterDesc), (filterDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnCreateTensorDescriptor, (cudnnTensorDescriptor_t *tensorDesc), (tensorDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnDestroyConvolutionDescriptor, (cudnnConvolutionDescriptor_t convDesc), (convDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnDestroyFilterDescriptor, (cudnnFilterDescriptor_t filterDesc), (filterDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnDestroyTensorDescriptor, (cudnnTensorDescriptor_t tensorDesc), (tensorDesc)) \
  X(kCudnn, cudnnStatus_t, cudnnFindConvolutionBackwardDataAlgorithmEx, (cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnTensorDescriptor_t dyDesc, const void *dy, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, void *dx, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes), (handle, wDesc, w, dyDesc, dy, convDesc, dxDesc, dx, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes)) \
  X(kCudnn, cudnnStatus_t, cudnnFindConvolutionBackwardFilterAlgorithmEx, (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x, const cudnnTensorDescriptor_t dyDesc, const void *y, const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t dwDesc, void *dw, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes), (handle, xDesc, x, dyDesc, y, convDesc, dwDesc, dw, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes)) \
  X(kCudnn, cudnnStatus_t, cudnnFindConvolutionForwardAlgorithmEx, (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void *x, const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc, void *y, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace, size_t workSpaceSizeInBytes), (handle, xDesc, x, wDesc, w, convDesc, yDesc, y, requestedAlgoCount, returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolution2dForwardOutputDim, (const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t inputTensorDesc, const cudnnFilterDescriptor_t filterDesc, int *n, int *c, int *h, int *w), (convDesc, inputTensorDesc, filterDesc, n, c, h, w)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionBackwardDataAlgorithm_v7, (cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc, const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t *perfResults), (handle, filterDesc, diffDesc, convDesc, gradDesc, requestedAlgoCount, returnedAlgoCount, perfResults)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionBackwardDataWorkspaceSize, (cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc, cudnnConvolutionBwdDataAlgo_t algo, size_t *sizeInBytes), (handle, wDesc, dyDesc, convDesc, dxDesc, algo, sizeInBytes)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionBackwardFilterAlgorithm_v7, (cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc, const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t *perfResults), (handle, srcDesc, diffDesc, convDesc, gradDesc, requestedAlgoCount, returnedAlgoCount, perfResults)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionBackwardFilterWorkspaceSize, (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc, cudnnConvolutionBwdFilterAlgo_t algo, size_t *sizeInBytes), (handle, xDesc, dyDesc, convDesc, gradDesc, algo, sizeInBytes)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionForwardAlgorithm_v7, (cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc, const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount, int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults), (handle, srcDesc, filterDesc, convDesc, destDesc, requestedAlgoCount, returnedAlgoCount, perfResults)) \
  X(kCudnn, cudnnStatus_t, cudnnGetConvolutionForwardWorkspaceSize, (cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnFilterDescriptor_t wDesc, const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t yDesc, cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes), (handle, xDesc, wDesc, convDesc, yDesc, algo, sizeInBytes)) \
  X(kCudnn, const char *, cudnnGetErrorString, (cudnnStatus_t status), (status)) \
  X(kCudnn, size_t, cudnnGetVersion, (void), ()) \
  X(kCudnn, cudnnStatus_t, cudnnSetConvolution2dDescriptor, (cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u, int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode, cudnnDataType_t computeType), (convDesc, pad_h, pad_w, u, v, dilation_h, dilation_w, mode, computeType)) \
  X(kCudnn, cudnnStatus_t, cudnnSetConvolutionGroupCount, (cudnnConvolutionDescriptor_t convDesc, int groupCount), (convDesc, groupCount)) \
  X(kCudnn, cudnnStatus_t, cudnnSetConvolutionMathType, (cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType), (convDesc, mathType)) \
  X(kCudnn, cudnnStatus_t, cudnnSetFilter4dDescriptor, (cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType, cudnnTensorFormat_t format, int k, int c, int h, int w), (filterDesc, dataType, format, k, c, h, w)) \
  X(kCudnn, cudnnStatus_t, cudnnSetStream, (cudnnHandle_t handle, cudaStream_t streamId), (handle, streamId)) \
  X(kCudnn, cudnnStatus_t, cudnnSetTensor4dDescriptor, (cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format, cudnnDataType_t dataType, int n, int c, int h, int w), (tensorDesc, format, dataType, n, c, h, w))
#else
#define MMF_CUDNN_FUNCTIONS(X)
#endif
#ifdef MMFUSE_WITH_NCCL
#define MMF_NCCL_FUNCTIONS(X) \
  X(kNccl, ncclResult_t, ncclAllReduce, (const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream), (sendbuff, recvbuff, count, datatype, op, comm, stream)) \
  X(kNccl, ncclResult_t, ncclBroadcast, (const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream), (sendbuff, recvbuff, count, datatype, root, comm, stream)) \
  X(kNccl, ncclResult_t, ncclCommAbort, (ncclComm_t comm), (comm)) \
  X(kNccl, ncclResult_t, ncclCommDestroy, (ncclComm_t comm), (comm)) \
  X(kNccl, ncclResult_t, ncclCommGetAsyncError, (ncclComm_t comm, ncclResult_t *asyncError), (comm, asyncError)) \
  X(kNccl, ncclResult_t, ncclCommInitRank, (ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank), (comm, nranks, commId, rank)) \
  X(kNccl, const char*, ncclGetErrorString, (ncclResult_t result), (result)) \
  X(kNccl, ncclResult_t, ncclGetUniqueId, (ncclUniqueId* uniqueId), (uniqueId))
#else
#define MMF_NCCL_FUNCTIONS(X)
#endif

#define MMF_ALL_FUNCTIONS(X) MMF_CUBLAS_FUNCTIONS(X) MMF_CUDNN_FUNCTIONS(X) MMF_NCCL_FUNCTIONS(X)

#define MMF_FORWARD(library, result, name, parameters, arguments)                                  \
  extern "C" result name parameters {                                                               \
    static const auto real = reinterpret_cast<decltype(&name)>(::mmfuse::cuda::library_symbol(library, #name)); \
    return real arguments;                                                                          \
  }
MMF_ALL_FUNCTIONS(MMF_FORWARD)
#pragma GCC visibility pop

namespace mmfuse::cuda {

const std::vector<LibrarySymbol>& lazy_symbols() {
#define MMF_ENTRY(library, result, name, parameters, arguments) LibrarySymbol{library, #name},
  static const std::vector<LibrarySymbol> symbols{MMF_ALL_FUNCTIONS(MMF_ENTRY)};
#undef MMF_ENTRY
  return symbols;
}

namespace {

const char* cuda_library_hint(const std::string& library) {
  if (library.rfind("libcublas", 0) == 0) return "cuBLAS, part of the CUDA toolkit";
  if (library.rfind("libcudnn", 0) == 0) return "cuDNN";
  return "NCCL";
}

}  // namespace

void* library_symbol(const char* library, const char* symbol) {
  static std::mutex mutex;
  static std::map<std::string, void*> handles;
  std::lock_guard<std::mutex> lock(mutex);
  void*& handle = handles[library];
  if (!handle) {
    handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      throw DeviceError(detail::concat("cannot load ", library, " (", cuda_library_hint(library), ", needed for ", symbol,
                                       "): ", why ? why : "unknown error",
                                       "; install it or put its folder on LD_LIBRARY_PATH"));
    }
  }
  dlerror();
  void* address = dlsym(handle, symbol);
  if (!address) {
    const char* why = dlerror();
    throw DeviceError(detail::concat(library, " has no function ", symbol, ": ", why ? why : "null symbol",
                                     " (a different major version than mmfuse was built with?)"));
  }
  return address;
}

bool library_loaded(const char* library) {
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (handle) dlclose(handle);  // drops the reference NOLOAD took; the library stays loaded
  return handle != nullptr;
}

}  // namespace mmfuse::cuda
