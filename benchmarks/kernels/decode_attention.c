// Decode attention over a paged bf16 cache, 12 layers × 8 kv heads × 64, block 16, one sequence of CTX positions
// whose blocks lie STRIDE apart, with (FLUSH = 1) a 7.5 MB weight stream read between layers as decode does: ms per
// step and the KV bytes' rate (docs/PERFORMANCE.md, "Decode attention in place"). READ as a fifth argument times a
// plain read of the same bytes instead.
//
//   S=Sources/CTandemKernels; clang -O2 -DSTRIDE=1 -I$S/include -I$S -o /tmp/decode_attention \
//     benchmarks/kernels/decode_attention.c -lm
//   /tmp/decode_attention BLOCKS CTX FLUSH HUGEPAGES [READ]     # e.g. 4096 164 1 0
#include "../../Sources/CTandemKernels/attention.c"
#ifndef STRIDE
#define STRIDE 1
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/mman.h>
#include <string.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
__attribute__((target("avx2,fma,f16c"))) int main(int argc,char**argv){
  long layers=12, kv=8, d=64, bs=16, blocks=atol(argv[1]), ctx=atol(argv[2]); int flush=atoi(argv[3]);
  long blockElems=kv*bs*d; long layerBytes=blocks*blockElems*2;
  char *pool=mmap(0,2*layers*layerBytes,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); if(atoi(argv[4])) madvise(pool,2*layers*layerBytes,MADV_HUGEPAGE); for(long i=0;i<2*layers*layerBytes;i+=2) *(uint16_t*)(pool+i)=0x3f80 ^ (i&0xff);
  long nb=(ctx+bs-1)/bs; int32_t *table=malloc(nb*4); for(long i=0;i<nb;i++) table[i]=(i*STRIDE+5)%blocks;
  long wbytes=90L<<20; char *w=aligned_alloc(4096,wbytes); for(long i=0;i<wbytes;i+=8) *(long*)(w+i)=i;
  float bigscratch[16*130], q[16*64], out[16*64], scratch[2*128], mx[2], sm[2]; for(int i=0;i<1024;i++) q[i]=0.01f*i;
  double attn=0, tot0=now(); volatile long sink=0;
  for(int step=0;step<50;step++){
    for(long L=0;L<layers;L++){
      if(flush){ __m256i acc=_mm256_setzero_si256(); const char*wl=w+L*(wbytes/layers); for(long i=0;i<wbytes/layers;i+=32) acc=_mm256_add_epi64(acc,_mm256_load_si256((const __m256i*)(wl+i))); sink+=_mm256_extract_epi64(acc,0);}
      double t=now();
      if(argc>5){ __m256i acc=_mm256_setzero_si256(); for(long h=0;h<kv;h++) for(int kvv=0;kvv<2;kvv++){ const char*base=pool+(2*L+kvv)*layerBytes; for(long b=0;b<nb;b++){ const char*run=base+(table[b]*blockElems+h*bs*d)*2; long rows=ctx-b*bs<bs?ctx-b*bs:bs; for(long i=0;i<rows*d*2;i+=32) acc=_mm256_add_epi64(acc,_mm256_loadu_si256((const __m256i*)(run+i)));}} sink+=_mm256_extract_epi64(acc,1);} else
      tandem_attend_one_avx2(TANDEM_KV_BFLOAT16,q,kv,2,d,pool+2*L*layerBytes,pool+(2*L+1)*layerBytes,table,bs,0,ctx,0.125f,128,bigscratch,out);
      attn+=now()-t;
    }
  }
  {FILE*f=fopen("/proc/self/smaps_rollup","r");char line[256];while(fgets(line,256,f)) if(strstr(line,"AnonHuge")) fputs(line,stdout);fclose(f);}
  double kvbytes=50.0*layers*2*kv*ctx*d*2;
  printf("ctx %ld flush %d: attention %.3f ms/step, %.1f GB/s of KV; total %.3f ms/step\n",ctx,flush,attn/50*1e3,kvbytes/attn/1e9,(now()-tot0)/50*1e3);
}
