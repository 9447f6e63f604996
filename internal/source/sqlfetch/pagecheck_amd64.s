#include "textflag.h"

// func checksumPageAVX2(page *byte, rows int, init *[32]uint32, mask *[8]uint32, zeros *[256]byte) uint32
//
// A whole page (rows >= 1 rows of 32 little-endian words): the 32 lanes, four registers of 8,
// start at init; the first row's first 8 words are ANDed with mask (pd_checksum taken as
// zero); for each row of words w[j] and each lane j, t = sums[j] ^ w[j] and
// sums[j] = t*16777619 ^ (t >> 17); then the same loop runs over two rows of zeros (the
// server's two rounds of zeros), and the lanes are folded by XOR into the result (before the
// block number is mixed in).
TEXT ·checksumPageAVX2(SB), NOSPLIT, $0-44
	MOVQ page+0(FP), SI
	MOVQ rows+8(FP), CX
	MOVQ init+16(FP), DI
	MOVQ mask+24(FP), DX
	XORQ R9, R9 // 1 once the rows of zeros are under way
	VMOVDQU 0(DI), Y0
	VMOVDQU 32(DI), Y1
	VMOVDQU 64(DI), Y2
	VMOVDQU 96(DI), Y3
	MOVL $16777619, AX
	MOVD AX, X4
	VPBROADCASTD X4, Y4

	// The first row, its first register masked.
	VMOVDQU 0(SI), Y9
	VPAND 0(DX), Y9, Y9
	VPXOR Y9, Y0, Y0
	JMP mix

row:
	VPXOR 0(SI), Y0, Y0
mix:
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
	JNZ row

	// Two rounds of zeros.
	TESTQ R9, R9
	JNZ fold
	MOVQ $1, R9
	MOVQ zeros+32(FP), SI
	MOVQ $2, CX
	JMP row

fold:
	VPXOR Y1, Y0, Y0
	VPXOR Y3, Y2, Y2
	VPXOR Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPXOR X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPXOR X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPXOR X1, X0, X0
	MOVL X0, AX
	MOVL AX, ret+40(FP)
	VZEROUPPER
	RET
