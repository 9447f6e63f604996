#include "textflag.h"

// func checksumRowsAVX2(sums *[32]uint32, p *byte, rows int)
//
// For each row of 32 words w[j] and each lane j: t = sums[j] ^ w[j];
// sums[j] = t*16777619 ^ (t >> 17). The 32 lanes are four registers of 8.
TEXT ·checksumRowsAVX2(SB), NOSPLIT, $0-24
	MOVQ sums+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ rows+16(FP), CX
	VMOVDQU 0(DI), Y0
	VMOVDQU 32(DI), Y1
	VMOVDQU 64(DI), Y2
	VMOVDQU 96(DI), Y3
	MOVL $16777619, AX
	MOVD AX, X4
	VPBROADCASTD X4, Y4

loop:
	VPXOR 0(SI), Y0, Y0
	VPXOR 32(SI), Y1, Y1
	VPXOR 64(SI), Y2, Y2
	VPXOR 96(SI), Y3, Y3
	VPSRLD $17, Y0, Y5
	VPSRLD $17, Y1, Y6
	VPSRLD $17, Y2, Y7
	VPSRLD $17, Y3, Y8
	VPMULLD Y4, Y0, Y0
	VPMULLD Y4, Y1, Y1
	VPMULLD Y4, Y2, Y2
	VPMULLD Y4, Y3, Y3
	VPXOR Y5, Y0, Y0
	VPXOR Y6, Y1, Y1
	VPXOR Y7, Y2, Y2
	VPXOR Y8, Y3, Y3
	ADDQ $128, SI
	DECQ CX
	JNZ loop

	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VZEROUPPER
	RET
