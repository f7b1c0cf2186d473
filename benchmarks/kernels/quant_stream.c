// One input row against a quantized weight streamed from memory (decode's case), one thread: the kernel's read
// speed in GB/s, best of 20 (docs/PERFORMANCE.md, the interleaved-weights sections):
//
//   S=Sources/CTandemKernels; clang -O2 -I$S/include -I$S -o /tmp/quant_stream benchmarks/kernels/quant_stream.c \
//     $S/quant.c $S/quant_k.c $S/quantize_k.c $S/linear16.c -lm
//   /tmp/quant_stream FORMAT [ROWS]     # FORMAT: ggml's type number; ROWS of 4,096 columns (default 32,768)
#include "tandem_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <string.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int format=atoi(argv[1]); long n=argc>2?atol(argv[2]):32768,k=4096;
  long rowb=k/tandem_quant_block_elements(format)*tandem_quant_block_bytes(format);
  unsigned char*w=aligned_alloc(64,n*rowb); srand(1); for(long i=0;i<n*rowb;i++) w[i]=rand();
  // moderate fp16 scales: overwrite d fields by quantizing real rows instead
  float *row=malloc(k*4); for(long j=0;j<n;j++){ for(long i=0;i<k;i++) row[i]=(rand()/(float)RAND_MAX-0.5f); tandem_quantize_row(format,row,k,w+j*rowb);} 
  tandem_quant_interleave(format,w,n,k);
  int inf=tandem_quant_input_format(format); long xb=k/tandem_quant_block_elements(inf)*tandem_quant_block_bytes(inf);
  void*xq=malloc(xb); for(long i=0;i<k;i++) row[i]=rand()/(float)RAND_MAX-0.5f; tandem_quantize_row(inf,row,k,xq);
  float*y=malloc(n*4); double best=1e9;
  for(int it=0;it<20;it++){double t=now(); tandem_linear_quant(format,1,xq,1,k,w,n,0,n,y); t=now()-t; if(t<best)best=t;}
  printf("format %d: %.2f ms, %.1f GB/s (y0 %g)\n",format,best*1e3,n*rowb/best/1e9,y[0]);
}
