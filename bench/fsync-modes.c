/*
 * fsync-modes: how long it takes to make a group of new small files durable, by each
 * way the spool could do it (serial fsync, one syncfs(2), sync_file_range(2) then
 * fdatasync or fsync each, fsync from one thread per file), followed each time by
 * the rename into new/ and one fsync of new/.  Modes are interleaved group by group
 * so they see the same disk weather; prints the median and mean per group.
 *
 *   cc -O2 -o /tmp/fsync-modes bench/fsync-modes.c -lpthread
 *   /tmp/fsync-modes DIR FILES_PER_GROUP GROUPS      (DIR on the disk to measure)
 *
 * Used for the choice in src/store/spool.c (docs/PERFORMANCE.md).  Not a test.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
static int tmpfd, newfd; static char names[64][64]; static int fds[64]; static int N;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static int cnt;
static void mk(void){ char buf[1100]; memset(buf,'x',sizeof buf);
 for(int i=0;i<N;i++){snprintf(names[i],64,"f%d",cnt++); fds[i]=openat(tmpfd,names[i],O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC,0600); if(write(fds[i],buf,sizeof buf)<0) abort();} }
static void finish(void){ for(int i=0;i<N;i++){close(fds[i]); renameat(tmpfd,names[i],newfd,names[i]);} fsync(newfd);} 
static void *th(void *a){ long i=(long)a; fsync(fds[i]); return NULL; }
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
#define M 5
int main(int argc,char**argv){
 if (argc < 4) { fprintf(stderr, "usage: fsync-modes DIR FILES(1-64) GROUPS(1-1000)\n"); return 2; }
 const char *dir=argv[1]; N=atoi(argv[2]); int G=atoi(argv[3]); char p[512];
 if (G < 1 || G > 1000 || N < 1 || N > 64) { fprintf(stderr, "usage: fsync-modes DIR FILES(1-64) GROUPS(1-1000)\n"); return 2; }
 snprintf(p,512,"%s/tmp",dir); mkdir(dir,0700); mkdir(p,0700); tmpfd=open(p,O_RDONLY|O_DIRECTORY);
 snprintf(p,512,"%s/new",dir); mkdir(p,0700); newfd=open(p,O_RDONLY|O_DIRECTORY);
 static double t[M][1000];
 for(int g=0;g<G;g++) for(int mode=0;mode<M;mode++){ mk(); double t0=now();
   if(mode==0) for(int i=0;i<N;i++) fsync(fds[i]);
   else if(mode==1) syncfs(tmpfd);
   else if(mode==2||mode==4){ for(int i=0;i<N;i++) sync_file_range(fds[i],0,0,SYNC_FILE_RANGE_WRITE); for(int i=0;i<N;i++) (mode==2?fdatasync:fsync)(fds[i]); }
   else { pthread_t th_[64]; for(long i=0;i<N;i++) pthread_create(&th_[i],0,th,(void*)i); for(int i=0;i<N;i++) pthread_join(th_[i],0);} 
   finish(); t[mode][g]=now()-t0; }
 const char *nm[]={"serial fsync","syncfs","sync_file_range(WRITE) all, then fdatasync each","parallel fsync threads","sync_file_range(WRITE) all, then fsync each"};
 for(int mode=0;mode<M;mode++){ double s=0; for(int g=0;g<G;g++) s+=t[mode][g]; qsort(t[mode],G,sizeof(double),cmp);
  printf("N=%2d %-50s median %.1f ms/group  mean %.1f ms  -> %.0f msg/s at median\n",N,nm[mode],t[mode][G/2]*1000,s*1000/G,N/t[mode][G/2]);}
 return 0; }
