echo "built $(ls src | wc -l) files"
