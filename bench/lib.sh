# bench/lib.sh: what the bench scripts share. Sourced from the
# repository's top (each script cd's there first): . bench/lib.sh

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
