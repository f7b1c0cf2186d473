// The quantized integer kernel against dequantize + OpenBLAS sgemm for m input rows (one thread), GFLOP/s, and
// the largest difference between the two (docs/PERFORMANCE.md, "Prompts in integers too"):
//
//   S=Sources/CTandemKernels; clang -O2 -I$S/include -I$S -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//     -o /tmp/quant_gemm benchmarks/kernels/quant_gemm.c $S/quant.c $S/quant_k.c $S/quantize_k.c $S/linear16.c -lopenblas -lm
//   OPENBLAS_NUM_THREADS=1 /tmp/quant_gemm FORMAT M N K     # FORMAT: ggml's type number (8 Q8_0, 2 Q4_0, 12 Q4_K, 14 Q6_K)
#include "tandem_kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int format=atoi(argv[1]); long m=atol(argv[2]), n=atol(argv[3]), k=atol(argv[4]);
  long rowb=k/tandem_quant_block_elements(format)*tandem_quant_block_bytes(format);
  unsigned char*w=aligned_alloc(64,n*rowb+64); float*row=malloc(k*4); srand(1);
  for(long j=0;j<n;j++){ for(long i=0;i<k;i++) row[i]=rand()/(float)RAND_MAX-0.5f; tandem_quantize_row(format,row,k,w+j*rowb);}
  tandem_quant_interleave(format,w,n,k);
  int inf=tandem_quant_input_format(format); long xb=k/tandem_quant_block_elements(inf)*tandem_quant_block_bytes(inf);
  char*xq=malloc(m*xb); for(long r=0;r<m;r++){ for(long i=0;i<k;i++) row[i]=rand()/(float)RAND_MAX-0.5f; tandem_quantize_row(inf,row,k,xq+r*xb);}
  float*y=malloc(m*n*4), *y2=malloc(m*n*4), *xin=malloc(m*k*4), *scratch=malloc(256*k*4);
  double bi=1e9,bs=1e9;
  for(int it=0;it<7;it++){
    double t=now(); tandem_linear_quant(format,1,xq,m,k,w,n,0,n,y); t=now()-t; if(t<bi)bi=t;
    t=now(); tandem_dequantize_rows(inf,xq,m,k,xin);
    for(long f=0;f<n;f+=256){ long c=n-f<256?n-f:256; tandem_dequantize_weight_rows(format,w,n,k,f,c,scratch); cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,m,c,k,1,xin,k,scratch,k,0,y2+f,n);} t=now()-t; if(t<bs)bs=t;
  }
  double err=0; for(long i=0;i<m*n;i++){double e=y[i]-y2[i]; if(e<0)e=-e; if(e>err)err=e;}
  printf("format %d m %ld n %ld k %ld: integer %.2f ms (%.1f GFLOP/s), dequant+sgemm %.2f ms (%.1f GFLOP/s), max diff %g\n",format,m,n,k,bi*1e3,2.0*m*n*k/bi/1e9,bs*1e3,2.0*m*n*k/bs/1e9,err);
}
